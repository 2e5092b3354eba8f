/* routing.c (render) — routing records as text, CSV and heatmaps (see routing.h). */
#include "probes/render/routing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/render/render.h"

char *dsv3_render_route_text(const dsv3_routerec *r, const dsv3_route_labels *lab) {
    dsv3_strbuf b = {0};
    char line[256];
    snprintf(
        line, sizeof line,
        "routing of %lld tokens over MoE layers %lld..%lld ('*': the bias changed the choice)\n",
        (long long)lab->T, (long long)lab->first_moe, (long long)lab->n_layers - 1);
    dsv3_strbuf_puts(&b, line);
    for (int64_t p = 0; p < lab->T && p < 64; p++) {
        char cell[64];
        dsv3_text_fit(cell, sizeof cell, lab->pieces && lab->pieces[p] ? lab->pieces[p] : "", 12);
        snprintf(line, sizeof line, "%4lld %s", (long long)p + 1, cell);
        dsv3_strbuf_puts(&b, line);
        for (int64_t i = 0; i < r->n; i++) {
            if (r->pos[i] != p || r->layer[i] >= lab->n_layers) continue;
            dsv3_strbuf_puts(&b, " |");
            for (int64_t k = 0; k < r->K; k++) {
                snprintf(line, sizeof line, "%s%d", k ? "," : "", r->experts[i * r->K + k]);
                dsv3_strbuf_puts(&b, line);
            }
            if (dsv3_routerec_bias_changed(r, i)) dsv3_strbuf_puts(&b, "*");
        }
        dsv3_strbuf_puts(&b, "\n");
    }
    if (lab->T > 64) dsv3_strbuf_puts(&b, " ...\n");
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_route_csv(const dsv3_routerec *r) {
    dsv3_strbuf b = {0};
    dsv3_strbuf_puts(&b, "layer,pos,token,rank,expert,weight,score,biased,bias_changed\n");
    for (int64_t i = 0; i < r->n; i++) {
        const int changed = dsv3_routerec_bias_changed(r, i);
        for (int64_t k = 0; k < r->K; k++) {
            const int32_t e = r->experts[i * r->K + k];
            char line[256];
            snprintf(line, sizeof line, "%lld,%lld,%d,%lld,%d,%.9g,%.9g,%.9g,%d\n",
                     (long long)r->layer[i], (long long)r->pos[i] + 1, r->token[i],
                     (long long)k + 1, e, r->weights[i * r->K + k],
                     e >= 0 ? r->scores[i * r->E + e] : 0.0, e >= 0 ? r->biased[i * r->E + e] : 0.0,
                     changed);
            dsv3_strbuf_puts(&b, line);
        }
    }
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_route_heatmap(const dsv3_routerec *r, const dsv3_route_labels *lab, int64_t li,
                                int svg) {
    const int64_t E = r->E, K = r->K;
    int64_t rows = 0;
    for (int64_t i = 0; i < r->n; i++)
        rows += r->layer[i] == li;
    if (!rows) return NULL;
    float *v = malloc((size_t)(rows * E) * sizeof *v);
    unsigned char *mark = calloc((size_t)(rows * E), 1);
    const char **labels = calloc((size_t)rows, sizeof *labels);
    if (!v || !mark || !labels) {
        free(v), free(mark), free(labels);
        return NULL;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < r->n; i++) {
        if (r->layer[i] != li) continue;
        memcpy(v + k * E, r->scores + i * E, (size_t)E * sizeof *v);
        for (int64_t j = 0; j < K; j++)
            if (r->experts[i * K + j] >= 0) mark[k * E + r->experts[i * K + j]] = 1;
        int64_t p = r->pos[i];
        labels[k] = lab->pieces && p < lab->T ? lab->pieces[p] : NULL;
        k++;
    }
    char title[96];
    snprintf(title, sizeof title, "layer %lld: sigmoid scores, chosen experts outlined",
             (long long)li);
    dsv3_heatmap hm = {.v = v,
                       .mark = mark,
                       .rows = rows,
                       .cols = E,
                       .row_labels = labels,
                       .title = title,
                       .col_axis = "expert"};
    char *out = svg ? dsv3_render_heatmap_svg(&hm) : dsv3_render_heatmap_text(&hm);
    free(v), free(mark), free(labels);
    return out;
}
