/* tokenizer.h — byte-level BPE tokenizer for DeepSeek-V3 (docs/ARCHITECTURE.md, "Tokenizer").
 *
 * Owns: loading a Hugging Face `tokenizer.json` (plus the optional `tokenizer_config.json` beside
 * it), encoding UTF-8 text to token ids exactly as the Hugging Face `tokenizers` library does for
 * the same file, and decoding ids back to text. Does not own: the regex splits (model/pretok),
 * the chat format (model/chat; dsv3_tokenizer_chat only supplies the BOS string), sampling, or
 * streaming detokenisation state. The library never prints.
 *
 * What a tokenizer.json may contain (anything else is rejected with DSV3_EUNSUPPORTED or
 * DSV3_EFORMAT and a message naming the JSON key):
 *   - model: type "BPE" with vocab {token: id} and merges as "a b" strings or ["a", "b"] pairs
 *     (both forms, even mixed; a string starting with "#version" is skipped, as HF does);
 *     dropout null; continuing_subword_prefix / end_of_word_suffix null; byte_fallback false;
 *     unk_token / fuse_unk / ignore_merges honoured.
 *   - normalizer: absent, null, or a Sequence whose normalizers are all empty Sequences.
 *   - pre_tokenizer: a ByteLevel step (add_prefix_space false; use_regex true adds the GPT-2
 *     split), optionally preceded by Split steps, alone or in a (nested) Sequence. Split takes
 *     {"Regex": p} (run by PCRE2 with HF's Oniguruma Unicode tables; see model/text/pretok.h) or
 *     {"String": s}, all five behaviours (Isolated, Removed, MergedWithPrevious, MergedWithNext,
 *     Contiguous) and invert. Nothing may follow the ByteLevel step.
 *   - decoder: ByteLevel.  post_processor: absent, null or ByteLevel.  truncation / padding: null.
 *   - added_tokens: content, id, special, normalized, lstrip, rstrip, single_word are all
 *     honoured as in HF (two passes: normalized=false tokens first, then normalized=true tokens
 *     in the remaining text; each pass leftmost-longest). Empty or duplicate contents are
 *     rejected, as is an id that the model vocab gives to a different string.
 * tokenizer_config.json keys read: add_bos_token, add_eos_token (booleans, false when absent),
 * bos_token, eos_token (a string or an object with "content"; must name a token). The
 * chat_template (a string, or a list whose "default" entry is used; else chat_template.jinja
 * beside the config) is recognised among the known templates (model/text/chat.h), never
 * interpreted: an unknown one makes chat refuse, naming the file.
 *
 * Ids are int32_t in [0, dsv3_tokenizer_vocab_size). Ids may have gaps (unused ids).
 *
 * Thread rules: a tokenizer is immutable after it is opened; every function below may be called
 * concurrently on one handle. Each call allocates its own scratch (a per-call pre-token cache).
 */
#ifndef DSV3_TOKENIZER_H
#define DSV3_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "model/text/chat.h"
#include "model/base/status.h"

typedef struct dsv3_tokenizer dsv3_tokenizer;

/* Opens a tokenizer. `path` is a directory holding tokenizer.json (required) and
 * tokenizer_config.json (optional), or the path of a tokenizer.json file, in which case
 * tokenizer_config.json is looked for in the same directory.
 * On success *out owns the tokenizer (free with dsv3_tokenizer_close) and DSV3_OK is returned.
 * On failure *out is NULL and the status is DSV3_EIO (file unreadable), DSV3_EFORMAT (bad JSON,
 * bad structure, a merge naming an unknown token, ...), DSV3_EUNSUPPORTED (a valid feature this
 * module does not implement), DSV3_ENOMEM, or DSV3_EINVAL (NULL out or path); err names the file
 * and the JSON key, e.g. "tokenizer: /m/tokenizer.json: model.merges[12]: token "xy" is not in
 * model.vocab". */
dsv3_status dsv3_tokenizer_open(dsv3_tokenizer **out, const char *path, dsv3_err *err);

/* Opens the optional tokenizer of a model directory: when dir has no tokenizer.json, returns
 * DSV3_OK with *out NULL; when it has one, exactly dsv3_tokenizer_open(out, dir, err) (so a bad
 * tokenizer.json is an error with that call's message). DSV3_ENOMEM ("tokenizer: out of
 * memory") if the path cannot be built; DSV3_EINVAL for NULL out or dir. */
dsv3_status dsv3_tokenizer_open_dir(dsv3_tokenizer **out, const char *dir, dsv3_err *err);

/* Same as dsv3_tokenizer_open, from memory: `json` (json_len bytes) is the tokenizer.json text,
 * `config_json` (config_len bytes) the tokenizer_config.json text or NULL for none. Neither needs
 * a terminating NUL; both are copied as needed and may be freed after the call. Messages name
 * "<tokenizer.json>" / "<tokenizer_config.json>" in place of a path. */
dsv3_status dsv3_tokenizer_load_json(dsv3_tokenizer **out, const char *json, size_t json_len,
                                     const char *config_json, size_t config_len, dsv3_err *err);

/* Frees the tokenizer. NULL is a harmless no-op. */
void dsv3_tokenizer_close(dsv3_tokenizer *tok);

/* Encodes `len` bytes of UTF-8 `text` (need not be NUL-terminated; embedded NULs are text).
 * The ids are those the HF `tokenizers` library gives for the same tokenizer.json:
 * added tokens are matched first, the text between them goes through the pre-tokenizer splits,
 * the ByteLevel byte map and BPE. If add_special is nonzero, the BOS id is prepended when the
 * config says add_bos_token and the EOS id appended when it says add_eos_token (as transformers'
 * add_special_tokens=True does); with add_special zero, or without a config, nothing is added.
 * On success *ids is a malloc'd array of *n_ids ids (the caller frees it with free(); it is NULL
 * only when *n_ids is 0 and may be non-NULL then too) and DSV3_OK is returned. Empty text gives
 * zero ids (plus BOS/EOS as above). A NULL text with len 0 is empty text.
 * Errors (then *ids is NULL and *n_ids 0): DSV3_EINVAL for invalid UTF-8, with the message
 * "tokenizer: encode: invalid UTF-8 at byte offset N" (N = offset of the first byte of the first
 * ill-formed sequence; overlongs, surrogates and code points above U+10FFFF are invalid);
 * DSV3_EINVAL for NULL tok/ids/n_ids or NULL text with len > 0; DSV3_ENOMEM; DSV3_EUNSUPPORTED
 * if PCRE2 gives up on a pre-tokenizer regex (match or JIT stack limit), naming the step and
 * byte offset. */
dsv3_status dsv3_tokenizer_encode(const dsv3_tokenizer *tok, int32_t **ids, size_t *n_ids,
                                  const char *text, size_t len, int add_special, dsv3_err *err);

/* Decodes ids to UTF-8 text, as HF `decode` with the ByteLevel decoder: each token contributes
 * the bytes its characters stand for in the byte-level alphabet (or, for a token with a
 * character outside that alphabet such as "<｜User｜>", its own UTF-8 text); the concatenation is
 * then repaired so that every maximal ill-formed UTF-8 subsequence becomes one U+FFFD (the rule
 * of Rust's String::from_utf8_lossy). With skip_special nonzero, tokens whose added_tokens entry
 * has "special": true are left out. For valid UTF-8 s: decode(encode(s)) == s, provided every
 * byte's character is in the vocab (true for DeepSeek-V3) and no added token has lstrip or rstrip
 * (such a token absorbs the whitespace next to it, as in HF).
 * On success *text is a malloc'd, NUL-terminated string of *len bytes (caller frees with free())
 * and DSV3_OK is returned; n_ids 0 gives "". Errors (then *text is NULL, *len 0): DSV3_EINVAL
 * for an id that has no token, with the message "tokenizer: decode: id N at position P is not a
 * token (vocab size V)", or for NULL arguments (ids may be NULL when n_ids is 0); DSV3_ENOMEM. */
dsv3_status dsv3_tokenizer_decode(const dsv3_tokenizer *tok, char **text, size_t *len,
                                  const int32_t *ids, size_t n_ids, int skip_special,
                                  dsv3_err *err);

/* One more than the largest token id (model vocab and added tokens). 0 for NULL. */
int32_t dsv3_tokenizer_vocab_size(const dsv3_tokenizer *tok);

/* The token's string as written in tokenizer.json (byte-level alphabet for model tokens, e.g.
 * "Ġthe"; the content for added tokens), NUL-terminated and owned by the tokenizer (valid until
 * close). NULL if id has no token or tok is NULL. */
const char *dsv3_tokenizer_piece(const dsv3_tokenizer *tok, int32_t id);

/* The raw bytes token `id` decodes to (before UTF-8 repair; may be a partial UTF-8 sequence),
 * for streaming output. Sets *len and returns a pointer owned by the tokenizer (not
 * NUL-terminated); NULL (and *len 0) if id has no token. len may not be NULL. */
const char *dsv3_tokenizer_token_bytes(const dsv3_tokenizer *tok, int32_t id, size_t *len);

/* A short readable label of token `id` for tables and figures: its bytes in the visible form of
 * dsv3_utf8_visible (" world" -> "␣world", "\n" -> "↵", a partial UTF-8 byte -> "\xE4"), the
 * BOS and EOS tokens as "<bos>" and "<eos>", other special tokens as their content. Malloc'd;
 * NULL if id has no token (or out of memory). */
char *dsv3_tokenizer_label(const dsv3_tokenizer *tok, int32_t id);

/* The id of the token whose string (as dsv3_tokenizer_piece gives it) is `piece`, looking in the
 * added tokens first, then the model vocab, e.g. dsv3_tokenizer_token_id(tok, "<｜User｜>").
 * -1 if there is none or an argument is NULL. */
int32_t dsv3_tokenizer_token_id(const dsv3_tokenizer *tok, const char *piece);

/* 1 if id is an added token marked "special": true (these are dropped by decode with
 * skip_special), else 0 (also for ids without a token). */
int dsv3_tokenizer_is_special(const dsv3_tokenizer *tok, int32_t id);

/* The ids of the config's bos_token / eos_token, or -1 when there is no config or no such key. */
int32_t dsv3_tokenizer_bos_id(const dsv3_tokenizer *tok);
int32_t dsv3_tokenizer_eos_id(const dsv3_tokenizer *tok);

/* 1 when encoding with add_special prepends the BOS id (tokenizer_config.json add_bos_token),
 * else 0 (also for NULL or no config). Prompts built from parts (chat, FIM) use it to start
 * the way a plain prompt would. */
int dsv3_tokenizer_adds_bos(const dsv3_tokenizer *tok);

/* The checkpoint's chat template: a dsv3_chat_kind (model/text/chat.h), -1 when it has none
 * (chat then uses the DeepSeek-V3 format and dsv3_tokenizer_chat_warning says so), -2 when it is
 * not a known template (chat is refused). */
int dsv3_tokenizer_chat_kind(const dsv3_tokenizer *tok);

/* When the checkpoint has no chat template: one line (no newline) for the user, e.g.
 * "warning: DIR/tokenizer_config.json has no chat_template; chatting in the DeepSeek-V3 format";
 * else NULL. */
const char *dsv3_tokenizer_chat_warning(const dsv3_tokenizer *tok);

/* Renders msgs as the checkpoint's template does: dsv3_chat_render_kind (model/text/chat.h, which
 * documents the exact output and the think values) with the config's bos_token content as the
 * BOS string ("" without one); the DeepSeek-V3 format when there is no template. An unknown
 * template is DSV3_EUNSUPPORTED, naming the file, e.g. "chat: DIR/tokenizer_config.json: the
 * chat_template (N bytes, FNV-1a H) is not one dsv3 knows (...)". Ownership, statuses and NULL
 * rules are dsv3_chat_render's; tok NULL is DSV3_EINVAL. */
dsv3_status dsv3_tokenizer_chat_think(const dsv3_tokenizer *tok, int think, char **text,
                                      size_t *len, const dsv3_chat_msg *msgs, size_t n_msgs,
                                      int add_generation_prompt, dsv3_err *err);

/* dsv3_tokenizer_chat_think with think -1 (the template's default). */
dsv3_status dsv3_tokenizer_chat(const dsv3_tokenizer *tok, char **text, size_t *len,
                                const dsv3_chat_msg *msgs, size_t n_msgs, int add_generation_prompt,
                                dsv3_err *err);

#endif
