/* tokenize.c — `dsv3 tokenize MODEL_DIR --text TEXT [--bos] [--json]`
 *
 * Prints exactly the ids the tokenizer gives for the text, space-separated on one line (no BOS
 * unless --bos and the tokenizer_config asks for it); --json prints {"ids":[...],"pieces":[...]}.
 * MODEL_DIR may also be a tokenizer.json path.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/text/tokenizer.h"
#include "repl/cli/cli.h"

int dsv3_cli_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL;
    int bos = 0, json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--bos")) bos = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "dsv3 tokenize: unknown or incomplete option '%s'\n"
                            "usage: dsv3 tokenize MODEL_DIR --text TEXT [--bos] [--json]\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !text) {
        fprintf(stderr, "usage: dsv3 tokenize MODEL_DIR --text TEXT [--bos] [--json]\n");
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (dsv3_tokenizer_open(&tok, dir, &err) ||
        dsv3_tokenizer_encode(tok, &ids, &n, text, strlen(text), bos, &err)) {
        fprintf(stderr, "dsv3 tokenize: %s\n", err.msg);
        dsv3_tokenizer_close(tok);
        return 1;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject(), *ja = cJSON_AddArrayToObject(o, "ids"),
              *pa = cJSON_AddArrayToObject(o, "pieces");
        for (size_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
            cJSON_AddItemToArray(pa, cJSON_CreateString(dsv3_tokenizer_piece(tok, ids[i])));
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    }
    free(ids);
    dsv3_tokenizer_close(tok);
    return 0;
}
