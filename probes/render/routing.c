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

/* One layer's panel: its records' rows of scores, chosen cells, labels; and what its tooltips
 * read. */
typedef struct {
    const dsv3_routerec *r;
    int64_t *rec;          /* [rows] record index of each row */
    const char **labels;   /* [rows] */
    float *v;              /* [rows, E] */
    unsigned char *mark;   /* [rows, E] */
    int64_t rows, layer;
    char title[64];
} route_panel;

static void route_tip(const void *ud, int64_t row, int64_t e, char *buf, size_t cap) {
    const route_panel *p = ud;
    const dsv3_routerec *r = p->r;
    const int64_t i = p->rec[row], per = r->G > 0 ? r->E / r->G : r->E, g = per ? e / per : 0;
    int n = snprintf(buf, cap, "layer %lld, pos %lld %s, expert %lld (group %lld%s): score %.4f, biased %.4f",
                     (long long)p->layer, (long long)r->pos[i] + 1, p->labels[row] ? p->labels[row] : "",
                     (long long)e, (long long)g, r->G > 1 && !r->groups[i * r->G + g] ? ", dropped" : "",
                     r->scores[i * r->E + e], r->biased[i * r->E + e]);
    for (int64_t k = 0; k < r->K && n > 0 && (size_t)n < cap; k++)
        if (r->experts[i * r->K + k] == e) {
            snprintf(buf + n, cap - (size_t)n, "; chosen #%lld, weight %.4f", (long long)k + 1,
                     r->weights[i * r->K + k]);
            return;
        }
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "; not chosen");
}

static void panel_fini(route_panel *p) {
    free(p->rec), free(p->labels), free(p->v), free(p->mark);
}

/* Fills p with layer li's records; 0 when it has none (or out of memory). */
static int panel_init(route_panel *p, const dsv3_routerec *r, const dsv3_route_labels *lab, int64_t li) {
    const int64_t E = r->E, K = r->K;
    *p = (route_panel){.r = r, .layer = li};
    for (int64_t i = 0; i < r->n; i++)
        p->rows += r->layer[i] == li;
    if (!p->rows) return 0;
    p->rec = malloc((size_t)p->rows * sizeof *p->rec);
    p->labels = calloc((size_t)p->rows, sizeof *p->labels);
    p->v = malloc((size_t)(p->rows * E) * sizeof *p->v);
    p->mark = calloc((size_t)(p->rows * E), 1);
    if (!p->rec || !p->labels || !p->v || !p->mark) {
        panel_fini(p);
        return 0;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < r->n; i++) {
        if (r->layer[i] != li) continue;
        p->rec[k] = i;
        memcpy(p->v + k * E, r->scores + i * E, (size_t)E * sizeof *p->v);
        for (int64_t j = 0; j < K; j++)
            if (r->experts[i * K + j] >= 0) p->mark[k * E + r->experts[i * K + j]] = 1;
        const int64_t pos = r->pos[i];
        p->labels[k] = lab->pieces && pos < lab->T ? lab->pieces[pos] : NULL;
        k++;
    }
    snprintf(p->title, sizeof p->title, li >= lab->n_layers ? "MTP layer %lld" : "layer %lld", (long long)li);
    return 1;
}

static dsv3_heatmap panel_map(const route_panel *p, const char *title) {
    return (dsv3_heatmap){.v = p->v, .mark = p->mark, .rows = p->rows, .cols = p->r->E,
                          .row_labels = p->labels, .title = title, .col_axis = "expert",
                          .row_axis = "token", .tip = route_tip, .tip_ud = p};
}

char *dsv3_render_route_heatmap(const dsv3_routerec *r, const dsv3_route_labels *lab, int64_t li,
                                int svg) {
    route_panel p;
    if (!panel_init(&p, r, lab, li)) return NULL;
    char title[96];
    snprintf(title, sizeof title, "layer %lld: sigmoid scores, chosen experts outlined", (long long)li);
    dsv3_heatmap hm = panel_map(&p, svg ? p.title : title);
    char *out = svg ? dsv3_render_heatmaps_svg(&hm, 1, title) : dsv3_render_heatmap_text(&hm);
    panel_fini(&p);
    return out;
}

char *dsv3_render_route_svg(const dsv3_routerec *r, const dsv3_route_labels *lab) {
    const int64_t nl = lab->n_layers - lab->first_moe;
    if (nl < 1) return NULL;
    route_panel *p = calloc((size_t)nl, sizeof *p);
    dsv3_heatmap *hm = calloc((size_t)nl, sizeof *hm);
    int n = 0;
    char *out = NULL;
    if (p && hm) {
        for (int64_t li = lab->first_moe; li < lab->n_layers; li++)
            if (panel_init(&p[n], r, lab, li)) {
                hm[n] = panel_map(&p[n], p[n].title);
                n++;
            }
        char title[160];
        snprintf(title, sizeof title,
                 "routing of %lld tokens, MoE layers %lld..%lld: sigmoid scores, chosen experts outlined "
                 "(hover a cell for the decision)",
                 (long long)lab->T, (long long)lab->first_moe, (long long)lab->n_layers - 1);
        if (n) out = dsv3_render_heatmaps_svg(hm, n, title);
    }
    for (int i = 0; i < n; i++) panel_fini(&p[i]);
    free(p), free(hm);
    return out;
}
