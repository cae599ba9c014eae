/* Reports: the runs of an experiment joined with the paper's numbers (experiments/paper/ (numbers.csv, coco.csv)), per table a Markdown
 * file, a CSV and a LaTeX tabular laid out like the paper's table; each cell "ours (mean ± std over seeds) | paper |
 * gap". A reduced-scale run goes into its own "[scale]" column: no paper number ever sits in an "ours" cell of it. */
#include "harness.h"
#include "provenance.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the paper's numbers ---- */

typedef struct {
    char *table, *method, *variant, *dataset, *metric, *note;
    int epochs;
    double mean, std; /* std NAN when absent */
    bool used;
} PaperRow;

typedef struct {
    PaperRow *rows;
    int n;
} Paper;

/* Splits one CSV line (with "quoted, fields") into at most max fields; returns the count. */
static int csv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        if (*p == '"') {
            char *out = ++p;
            fields[n++] = out;
            while (*p) {
                if (*p == '"' && p[1] == '"') *out++ = '"', p += 2;
                else if (*p == '"') {
                    p++;
                    break;
                } else *out++ = *p++;
            }
            *out = 0;
            if (*p == ',') p++;
            else break;
        } else {
            fields[n++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
    }
    return n;
}

static void paper_load_file(Paper *pp, const char *path) {
    char *text = slurp(path);
    if (!text) return;
    bool header = true;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[len - 1] = 0;
        if (header) header = false;
        else if (line[0]) {
            char *f[10] = {0};
            int n = csv_split(line, f, 10);
            if (n >= 8) {
                pp->rows = realloc(pp->rows, sizeof *pp->rows * (size_t)(pp->n + 1));
                if (!pp->rows) abort();
                PaperRow *r = &pp->rows[pp->n++];
                r->table = xstrdup(f[0]), r->method = xstrdup(f[1]), r->variant = xstrdup(f[2]);
                r->dataset = xstrdup(f[3]), r->epochs = atoi(f[4]), r->metric = xstrdup(f[6]);
                r->mean = atof(f[7]);
                r->std = n > 8 && f[8][0] ? atof(f[8]) : NAN;
                r->note = xstrdup(n > 9 ? f[9] : "");
                r->used = false;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
}

static void paper_load(const Ctx *ctx, Paper *pp) {
    memset(pp, 0, sizeof *pp);
    char *a = xasprintf("%s/experiments/paper/numbers.csv", ctx->home);
    char *b = xasprintf("%s/experiments/paper/coco.csv", ctx->home);
    paper_load_file(pp, a);
    paper_load_file(pp, b);
    free(a), free(b);
}

static void paper_free(Paper *pp) {
    for (int i = 0; i < pp->n; i++) {
        PaperRow *r = &pp->rows[i];
        free(r->table), free(r->method), free(r->variant), free(r->dataset), free(r->metric), free(r->note);
    }
    free(pp->rows);
}

static PaperRow *paper_find(Paper *pp, const char *table, const char *method, const char *variant,
                            const char *dataset, int epochs, const char *metric) {
    for (int i = 0; i < pp->n; i++) {
        PaperRow *r = &pp->rows[i];
        if (strcmp(r->table, table) == 0 && strcmp(r->method, method) == 0 && strcmp(r->variant, variant) == 0 &&
            strcmp(r->dataset, dataset) == 0 && (epochs <= 0 || r->epochs <= 0 || r->epochs == epochs) &&
            strcmp(r->metric, metric) == 0)
            return r;
    }
    return NULL;
}

/* ---- our numbers ---- */

typedef struct {
    const ExpCol *col;
    const ExpRow *row;
    int n_runs, n_done, n_failed, n_unsupported, n_missing_data;
    double mean, std;
    const char *first_failure;
    PaperRow *paper;
    bool quoted; /* a row quoted by the paper, never run */
} Cell;

typedef struct {
    const Experiment *e;
    RunStatus *st; /* per run of e (duplicates share a status) */
    Paper paper;
    const char *metric;
    /* the table: rows x cols */
    int n_rows, n_cols;
    ExpRow *rows; /* copies of e's rows plus quoted rows */
    const ExpCol *cols;
    Cell *cells;
    double wall, train; /* seconds over distinct runs */
    int distinct, done;
} Table;

static double run_metric(const RunStatus *st, const char *metric) {
    if (strcmp(metric, "train_hours") == 0) return st->train_seconds / 3600.0;
    if (strcmp(metric, "linear_top5") == 0) return st->linear_top5;
    if (strcmp(metric, "linear_best_top1") == 0) return st->linear_best_top1;
    if (strcmp(metric, "knn_top1") == 0) return st->knn_top1;
    return st->linear_top1;
}

static Cell *cell_at(Table *t, int row, int col) { return &t->cells[row * t->n_cols + col]; }

static int find_col(const Experiment *e, const char *label) {
    for (int i = 0; i < e->n_cols; i++)
        if (strcmp(e->cols[i].label, label) == 0) return i;
    return -1;
}

static void table_build(const Ctx *ctx, const Experiment *e, Table *t) {
    memset(t, 0, sizeof *t);
    t->e = e;
    t->metric = e->metric[0] ? e->metric : "linear_top1";
    paper_load(ctx, &t->paper);
    t->st = xcalloc((size_t)e->n_runs, sizeof(RunStatus));
    for (int i = 0; i < e->n_runs; i++) {
        store_status(ctx->results, e->runs[i].id, &t->st[i]);
        bool first = true;
        for (int j = 0; j < i; j++) first &= strcmp(e->runs[j].id, e->runs[i].id) != 0;
        if (first) {
            t->distinct++;
            if (t->st[i].state == RUN_DONE) t->done++, t->wall += t->st[i].wall_seconds, t->train += t->st[i].train_seconds;
        }
    }
    /* rows: the experiment's, then rows the paper quotes for this table that no cell matched */
    t->cols = e->cols;
    t->n_cols = e->n_cols;
    int cap = e->n_rows + t->paper.n;
    t->rows = xcalloc((size_t)cap, sizeof *t->rows);
    for (int i = 0; i < e->n_rows; i++) t->rows[t->n_rows++] = e->rows[i];
    const char *paper_metric = strcmp(t->metric, "train_hours") == 0 ? "train_hours" : "linear_top1";
    /* mark paper rows used by cells */
    for (int i = 0; i < e->n_cells; i++) {
        const ExpCell *c = &e->cells[i];
        PaperRow *pr = c->table[0] ? paper_find(&t->paper, c->table, c->method, c->variant, c->dataset, c->epochs,
                                                paper_metric)
                                   : NULL;
        if (pr) pr->used = true;
    }
    int first_quoted = t->n_rows;
    if (strcmp(e->kind, "table") == 0 && e->table[0]) {
        for (int i = 0; i < t->paper.n; i++) {
            PaperRow *pr = &t->paper.rows[i];
            if (pr->used || strcmp(pr->table, e->table) != 0 || strcmp(pr->metric, paper_metric) != 0) continue;
            ExpRow q;
            q.label = xasprintf("%s%s%s (%d ep; quoted)", pr->method, pr->variant[0] ? " " : "", pr->variant,
                                pr->epochs);
            q.method = pr->method, q.variant = pr->variant;
            t->rows[t->n_rows++] = q;
        }
    }
    t->cells = xcalloc((size_t)(t->n_rows * t->n_cols), sizeof(Cell));
    for (int r = 0; r < t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            Cell *cell = cell_at(t, r, c);
            cell->row = &t->rows[r], cell->col = &t->cols[c];
            cell->mean = cell->std = NAN;
            cell->quoted = r >= first_quoted;
        }
    /* paper numbers of the layout's cells */
    for (int i = 0; i < e->n_cells; i++) {
        const ExpCell *c = &e->cells[i];
        int col = find_col(e, c->col);
        int row = -1;
        for (int r = 0; r < e->n_rows; r++)
            if (strcmp(e->rows[r].label, c->row) == 0) row = r;
        if (row < 0 || col < 0 || !c->table[0]) continue;
        cell_at(t, row, col)->paper =
            paper_find(&t->paper, c->table, c->method, c->variant, c->dataset, c->epochs, paper_metric);
    }
    /* quoted rows: their paper number in the column of their data set */
    for (int r = first_quoted; r < t->n_rows; r++) {
        for (int i = 0; i < t->paper.n; i++) {
            PaperRow *pr = &t->paper.rows[i];
            if (pr->used || strcmp(pr->table, e->table) != 0 || strcmp(pr->metric, paper_metric) != 0) continue;
            if (strcmp(pr->method, t->rows[r].method) != 0 || strcmp(pr->variant, t->rows[r].variant) != 0) continue;
            char label[256];
            snprintf(label, sizeof label, "%s%s%s (%d ep; quoted)", pr->method, pr->variant[0] ? " " : "",
                     pr->variant, pr->epochs);
            if (strcmp(label, t->rows[r].label) != 0) continue;
            for (int c = 0; c < t->n_cols; c++)
                if (!t->cols[c].standin && strcmp(t->cols[c].dataset, pr->dataset) == 0) {
                    cell_at(t, r, c)->paper = pr;
                    break;
                }
        }
    }
    /* our runs */
    for (int r = 0; r < e->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            Cell *cell = cell_at(t, r, c);
            double sum = 0, sq = 0;
            int n = 0;
            for (int i = 0; i < e->n_runs; i++) {
                const ExpRun *run = &e->runs[i];
                if (strcmp(run->row, e->rows[r].label) != 0 || strcmp(run->col, t->cols[c].label) != 0) continue;
                cell->n_runs++;
                const RunStatus *st = &t->st[i];
                if (st->state == RUN_DONE && st->has_result) {
                    double v = run_metric(st, t->metric);
                    sum += v, sq += v * v, n++;
                    cell->n_done++;
                } else if (st->state == RUN_FAILED) {
                    if (st->unsupported) cell->n_unsupported++;
                    else if (st->message && strstr(st->message, "missing")) cell->n_missing_data++;
                    else cell->n_failed++;
                    if (!cell->first_failure) cell->first_failure = st->message;
                }
            }
            if (n > 0) {
                cell->mean = sum / n;
                cell->std = n > 1 ? sqrt(fmax(0, (sq - sum * sum / n) / (n - 1))) : NAN;
            }
        }
}

static void table_free(Table *t) {
    for (int r = t->e->n_rows; r < t->n_rows; r++) free(t->rows[r].label);
    free(t->rows);
    free(t->cells);
    for (int i = 0; i < t->e->n_runs; i++) run_status_free(&t->st[i]);
    free(t->st);
    paper_free(&t->paper);
}

/* ---- cell text ---- */

static void fmt_value(char *out, size_t n, double mean, double std, int count, const char *metric) {
    char m[32], s[32] = "";
    if (strcmp(metric, "train_hours") == 0) {
        /* hours from 0.1 h, else seconds (the reduced scales) */
        bool secs = mean < 0.1;
        double k = secs ? 3600 : 1;
        snprintf(m, sizeof m, secs ? "%.1f s" : "%.2f h", mean * k);
        if (!isnan(std)) snprintf(s, sizeof s, secs ? "%.1f s" : "%.2f h", std * k);
    } else {
        snprintf(m, sizeof m, "%.1f", mean);
        if (!isnan(std)) snprintf(s, sizeof s, "%.1f", std);
    }
    if (!isnan(std)) snprintf(out, n, "%s ± %s", m, s);
    else snprintf(out, n, "%s%s", m, count == 1 ? " (1 run)" : "");
}

/* A table of ours alone: kind table with no paper table id (a check of our own, e.g. experiments/precision.lua).
 * Its cells show our number only. */
static bool has_paper(const Experiment *e) { return e->has_paper; }

/* The three parts of a cell: ours, paper, gap. */
static void cell_parts(const Table *t, const Cell *c, char *ours, char *paper, char *gap, size_t n) {
    const char *metric = t->metric;
    if (c->paper) {
        char m[32], s[32];
        const char *f = strcmp(metric, "train_hours") == 0 ? "%.1f h" : "%.1f";
        snprintf(m, sizeof m, f, c->paper->mean);
        snprintf(s, sizeof s, f, c->paper->std);
        if (!isnan(c->paper->std)) snprintf(paper, n, "%s ± %s", m, s);
        else snprintf(paper, n, "%s", m);
    } else {
        snprintf(paper, n, "–");
    }
    snprintf(gap, n, "–");
    if (c->quoted) {
        snprintf(ours, n, "quoted, not run");
        return;
    }
    if (c->n_done > 0) {
        fmt_value(ours, n, c->mean, c->std, c->n_done, metric);
        if (c->n_done < c->n_runs) {
            size_t used = strlen(ours);
            snprintf(ours + used, n - used, " (%d/%d seeds)", c->n_done, c->n_runs);
        }
        if (c->col->standin) {
            snprintf(gap, n, "n/a (%s)", t->e->scale);
        } else if (c->paper) {
            snprintf(gap, n, strcmp(metric, "train_hours") == 0 ? "%+.2f h" : "%+.1f", c->mean - c->paper->mean);
        }
        return;
    }
    if (c->n_runs == 0) {
        snprintf(ours, n, "%s", c->col->standin ? "–" : strcmp(t->e->scale, "paper") == 0 ? "not run" :
                 "not run at this scale");
    } else if (c->n_unsupported) {
        snprintf(ours, n, "not run: method not implemented in the trainer yet");
    } else if (c->n_missing_data) {
        snprintf(ours, n, "not run: data set missing");
    } else if (c->n_failed) {
        snprintf(ours, n, "failed (see the runs below)");
    } else {
        snprintf(ours, n, "not run yet");
    }
}

/* ---- protocol summary ---- */

static void add_distinct(Str *b, const char *what, char **vals, int n) {
    str_addf(b, "%s ", what);
    int shown = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= strcmp(vals[j], vals[i]) == 0;
        if (seen) continue;
        str_addf(b, "%s%s", shown ? ", " : "", vals[i]);
        shown++;
    }
    str_add(b, "; ");
}

static void protocol_summary(const Experiment *e, Str *b) {
    int n = e->n_runs;
    if (n == 0) return;
    char **v = xcalloc((size_t)n, sizeof(char *));
    /* the projector apart from the encoder: the methods of one table share the encoder and differ in their heads */
    const char *keys[] = {"data", "network", "projector", "epochs", "batch", "optimiser", "linear"};
    for (int k = 0; k < 7; k++) {
        for (int i = 0; i < n; i++) {
            const TrainConfig *c = &e->runs[i].cfg;
            switch (k) {
            case 0:
                v[i] = c->subset > 0 ? xasprintf("%s (%dpx, %lld-image subset)", c->dataset, c->image_size,
                                                 (long long)c->subset)
                                     : xasprintf("%s (%dpx)", c->dataset, c->image_size);
                break;
            case 1:
                v[i] = xasprintf("ResNet %s {%d,%d,%d,%d} width %d %s stem",
                                 c->backbone.block == BLOCK_BASIC ? "basic" : "bottleneck", c->backbone.layers[0],
                                 c->backbone.layers[1], c->backbone.layers[2], c->backbone.layers[3],
                                 c->backbone.width, c->backbone.stem == STEM_CIFAR ? "CIFAR" : "ImageNet");
                break;
            case 2: v[i] = xasprintf("%d/%d", c->proj_hidden, c->proj_out); break;
            case 3: v[i] = xasprintf("%d", c->epochs); break;
            case 4: v[i] = xasprintf("%d global (%d per GPU at world size %d)", c->batch, c->batch / world_size(),
                                     world_size());
                break;
            case 5:
                v[i] = xasprintf("%s lr %g x %s = %g, %s, wd %g%s", c->optimizer == OPTIM_LARS ? "LARS" : "SGD", c->lr,
                                 c->lr_scaling == LR_SCALE_FLOOR ? "(batch // 256)" : "batch / 256",
                                 train_config_base_lr(c),
                                 c->lr_schedule == LR_COSINE_EPOCH ? "cosine per epoch"
                                 : c->lr_schedule == LR_COSINE_STEP ? "cosine per step"
                                                                    : "schedule function",
                                 c->weight_decay, c->warmup_epochs ? ", warmup" : "");
                break;
            default:
                v[i] = xasprintf("%s, %d epochs, lr %g%s%s", c->linear == LINEAR_SMALL ? "small" : "Mean-Shift",
                                 c->linear_epochs, c->linear_lr, c->linear_bn_train ? ", BN in train mode" : "",
                                 c->linear_best_epoch ? ", best epoch also recorded" : "");
            }
        }
        add_distinct(b, keys[k], v, n);
        for (int i = 0; i < n; i++) free(v[i]);
    }
    free(v);
    if (b->len >= 2) b->len -= 2, b->s[b->len] = 0;
}

void report_base(const Experiment *e, char *out, size_t n) {
    if (strcmp(e->scale, "paper") == 0) snprintf(out, n, "%s", e->name);
    else snprintf(out, n, "%s-%s", e->name, e->scale);
}

/* ---- plots ---- */

static char *plot_dir_of(const Ctx *ctx, const Experiment *e) {
    char base[256];
    report_base(e, base, sizeof base);
    return xasprintf("%s/plots/%s", ctx->results, base);
}

/* Copies src to dst (plot data beside the script). */
static int copy_file(const char *src, const char *dst) {
    char *t = slurp(src);
    if (!t) return -1;
    int rc = atomic_write_text(dst, t);
    free(t);
    return rc;
}

/* Loss, loss_w, loss_a and kNN per epoch, one curve per row, for each column (first seed of each cell). */
static void plot_curves(const Ctx *ctx, const Table *t, const char *dir, Str *md) {
    const Experiment *e = t->e;
    char *data = xasprintf("%s/data", dir);
    if (make_dirs(data) != 0) {
        free(data);
        return;
    }
    for (int c = 0; c < t->n_cols; c++) {
        Str gp = {0};
        int curves = 0;
        char slug[128], name[160];
        slugify(t->cols[c].label, slug, sizeof slug);
        snprintf(name, sizeof name, "curves_%s", slug);
        const char *panels[] = {"loss", "loss_w", "loss_a", "knn_top1"};
        const int colno[] = {2, 3, 4, 5};
        Str plots[4] = {{0}};
        for (int r = 0; r < e->n_rows; r++) {
            for (int i = 0; i < e->n_runs; i++) {
                const ExpRun *run = &e->runs[i];
                if (strcmp(run->row, e->rows[r].label) || strcmp(run->col, t->cols[c].label)) continue;
                if (t->st[i].state != RUN_DONE || run->cfg.epochs < 1) continue;
                char *src = xasprintf("%s/runs/%s/epochs.tsv", ctx->results, run->id);
                char *dst = xasprintf("%s/%s.epochs.tsv", data, run->id);
                int ok = copy_file(src, dst) == 0;
                free(src), free(dst);
                if (!ok) continue;
                for (int k = 0; k < 4; k++)
                    str_addf(&plots[k], "%s'data/%s.epochs.tsv' using 1:%d with linespoints title '%s'",
                             curves ? ", " : "", run->id, colno[k], e->rows[r].label);
                curves++;
                break; /* the first seed */
            }
        }
        if (curves > 0) {
            str_addf(&gp, "# %s: training curves of %s, one curve per method (first seed).\n"
                          "# Edit and re-render with: gnuplot %s.gp (data in data/, copied from the run directories)\n"
                          "set datafile separator tab\nset key autotitle columnhead\nset grid\nset key below\n"
                          "# epochs without a kNN monitor hold -1: missing, and lines join the others\n"
                          "set datafile missing '-1.0000'\n",
                     e->title, t->cols[c].label, name);
            for (int pass = 0; pass < 2; pass++) {
                str_addf(&gp, pass == 0 ? "set terminal pngcairo noenhanced size 1200,900\nset output '%s.png'\n"
                                        : "set terminal svg noenhanced size 1200,900\nset output '%s.svg'\n",
                         name);
                str_addf(&gp, "set multiplot layout 2,2 title '%s: %s'\n", e->name, t->cols[c].label);
                for (int k = 0; k < 4; k++)
                    str_addf(&gp, "set xlabel 'epoch'\nset ylabel '%s'\nplot %s\n", panels[k], str_c(&plots[k]));
                str_add(&gp, "unset multiplot\n");
            }
            char *path = xasprintf("%s/%s.gp", dir, name);
            if (atomic_write_text(path, str_c(&gp)) == 0 && plot_render(dir, name) == 0)
                str_addf(md, "- ![%s](plots/%s/%s.png) training curves, %s ([script](plots/%s/%s.gp))\n", name,
                         strrchr(dir, '/') + 1, name, t->cols[c].label, strrchr(dir, '/') + 1, name);
            free(path);
        }
        for (int k = 0; k < 4; k++) str_free(&plots[k]);
        str_free(&gp);
    }
    free(data);
}

/* Fig. 3: top-1 against the x key, one curve per column, the paper's best points marked. */
static void plot_beta(const Table *t, const char *dir, Str *md) {
    const Experiment *e = t->e;
    Str dat = {0}, gp = {0};
    str_add(&dat, "# column\tbeta_base\ttop1_mean\ttop1_std\n");
    int blocks = 0;
    Str plot = {0};
    for (int c = 0; c < t->n_cols; c++) {
        int points = 0;
        for (int r = 0; r < t->n_rows; r++) {
            const Cell *cell = cell_at((Table *)t, r, c);
            if (cell->n_done == 0) continue;
            if (points == 0) str_addf(&dat, "%s# %s\n", blocks ? "\n\n" : "", t->cols[c].label);
            str_addf(&dat, "%s\t%s\t%.4f\t%.4f\n", t->cols[c].label, t->rows[r].label, cell->mean,
                     isnan(cell->std) ? 0.0 : cell->std);
            points++;
        }
        if (points) {
            str_addf(&plot, "%s'beta.tsv' index %d using 2:3:4 with yerrorlines title '%s'", blocks ? ", " : "",
                     blocks, t->cols[c].label);
            blocks++;
        }
    }
    if (blocks == 0) goto done;
    /* the paper's best points: vertical lines */
    str_addf(&gp, "# %s. Edit and re-render with: gnuplot beta.gp\nset datafile separator tab\nset grid\n"
                  "set xlabel 'beta_base'\nset ylabel 'linear top-1 (%%)'\nset key below\n",
             e->title);
    /* the paper's best points: one dashed line per value, labelled with every column that has it */
    char vals[16][32], names[16][256];
    int nv = 0;
    char *best = xstrdup(e->best);
    for (char *save = NULL, *item = strtok_r(best, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) continue;
        *eq = 0;
        int j = 0;
        while (j < nv && strcmp(vals[j], eq + 1) != 0) j++;
        if (j == nv) {
            if (nv == 16) continue;
            snprintf(vals[nv], sizeof vals[nv], "%s", eq + 1);
            names[nv][0] = 0;
            nv++;
        }
        size_t used = strlen(names[j]);
        snprintf(names[j] + used, sizeof names[j] - used, "%s%s", used ? ", " : "", item);
    }
    free(best);
    for (int j = 0; j < nv; j++)
        str_addf(&gp, "set arrow %d from %s, graph 0 to %s, graph 1 nohead dashtype 2\n"
                      "set label %d \"paper best: %s\" at %s, graph 0.05 rotate by 90 offset -1,0\n",
                 j + 1, vals[j], vals[j], j + 1, names[j], vals[j]);
    str_add(&gp, "set offsets 0.05, 0.05, 0, 0\n");
    for (int pass = 0; pass < 2; pass++) {
        str_add(&gp, pass == 0 ? "set terminal pngcairo noenhanced size 900,600\nset output 'beta.png'\n"
                               : "set terminal svg noenhanced size 900,600\nset output 'beta.svg'\n");
        str_addf(&gp, "set title '%s (scale %s)'\nplot %s\n", e->title, e->scale, str_c(&plot));
    }
    char *dp = xasprintf("%s/beta.tsv", dir), *gpp = xasprintf("%s/beta.gp", dir);
    if (atomic_write_text(dp, str_c(&dat)) == 0 && atomic_write_text(gpp, str_c(&gp)) == 0 &&
        plot_render(dir, "beta") == 0)
        str_addf(md, "- ![beta](plots/%s/beta.png) top-1 against beta_base ([script](plots/%s/beta.gp), "
                     "[data](plots/%s/beta.tsv))\n", strrchr(dir, '/') + 1, strrchr(dir, '/') + 1,
                 strrchr(dir, '/') + 1);
    free(dp), free(gpp);
done:
    str_free(&dat), str_free(&gp), str_free(&plot);
}

/* Table 7: wall time as bars, ours per column and method. */
static void plot_walltime(const Table *t, const char *dir, Str *md) {
    Str dat = {0}, gp = {0};
    str_add(&dat, "column");
    for (int r = 0; r < t->n_rows; r++) str_addf(&dat, "\t\"%s (ours)\"", t->rows[r].label);
    for (int r = 0; r < t->n_rows; r++) str_addf(&dat, "\t\"%s (paper)\"", t->rows[r].label);
    str_add(&dat, "\n");
    int lines = 0;
    for (int c = 0; c < t->n_cols; c++) {
        bool any = false;
        for (int r = 0; r < t->n_rows; r++) any |= cell_at((Table *)t, r, c)->n_done > 0 || cell_at((Table *)t, r, c)->paper;
        if (!any) continue;
        str_addf(&dat, "\"%s\"", t->cols[c].label);
        for (int r = 0; r < t->n_rows; r++) {
            const Cell *cell = cell_at((Table *)t, r, c);
            str_addf(&dat, "\t%.5g", cell->n_done ? cell->mean : NAN);
        }
        for (int r = 0; r < t->n_rows; r++) {
            const Cell *cell = cell_at((Table *)t, r, c);
            str_addf(&dat, "\t%.5g", cell->paper ? cell->paper->mean : NAN);
        }
        str_add(&dat, "\n");
        lines++;
    }
    if (lines == 0) goto done;
    str_addf(&gp, "# %s: hours of pretraining, ours (measured here) and the paper's (V100s). Edit and re-render with: "
                  "gnuplot walltime.gp\nset datafile separator tab\nset datafile missing 'nan'\nset style data "
                  "histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset grid y\n"
                  "set ylabel 'hours'\nset logscale y\nset key below\nset xtics rotate by -20\n",
             t->e->title);
    for (int pass = 0; pass < 2; pass++) {
        str_add(&gp, pass == 0 ? "set terminal pngcairo noenhanced size 900,600\nset output 'walltime.png'\n"
                               : "set terminal svg noenhanced size 900,600\nset output 'walltime.svg'\n");
        str_addf(&gp, "set title 'Training time, RSA against BYOL (ours: scale %s)'\nplot for [i=2:%d] "
                      "'walltime.tsv' using i:xtic(1) title columnhead(i)\n",
                 t->e->scale, 1 + 2 * t->n_rows);
    }
    char *dp = xasprintf("%s/walltime.tsv", dir), *gpp = xasprintf("%s/walltime.gp", dir);
    if (atomic_write_text(dp, str_c(&dat)) == 0 && atomic_write_text(gpp, str_c(&gp)) == 0 &&
        plot_render(dir, "walltime") == 0)
        str_addf(md, "- ![walltime](plots/%s/walltime.png) wall time as bars ([script](plots/%s/walltime.gp))\n",
                 strrchr(dir, '/') + 1, strrchr(dir, '/') + 1);
    free(dp), free(gpp);
done:
    str_free(&dat), str_free(&gp);
}

/* ---- writers ---- */

static void write_header(const Ctx *ctx, const Table *t, Str *md) {
    const Experiment *e = t->e;
    str_addf(md, "# %s\n\n", e->title[0] ? e->title : e->name);
    str_addf(md, "<!-- rsa-report scale=%s comparable=%s experiment=%s -->\n\n", e->scale,
             strcmp(e->scale, "paper") == 0 ? "yes" : "no", e->file);
    if (strcmp(e->scale, "paper") != 0) {
        str_addf(md, "> **Scale: %s. NOT comparable with the paper.** %s\n", e->scale, scale_banner(e->scale));
        if (e->scale_notes[0]) str_addf(md, "> %s\n", e->scale_notes);
        str_add(md, "\n");
    }
    if (e->notes[0]) str_addf(md, "%s\n\n", e->notes);
    str_addf(md, "- **Experiment**: `%s`, scale **%s**, sweep %s\n", e->file, e->scale, e->axes);
    Str proto = {0};
    protocol_summary(e, &proto);
    str_addf(md, "- **Protocol**: %s\n", str_c(&proto));
    str_free(&proto);
    /* the hardware of the runs (their provenance), else this machine's */
    char *hw = NULL;
    for (int i = 0; i < e->n_runs && !hw; i++) {
        if (t->st[i].state != RUN_DONE) continue;
        char *p = xasprintf("%s/runs/%s/provenance.txt", ctx->results, e->runs[i].id);
        char *text = slurp(p);
        char *cpu = kv_get(text, "cpu"), *cores = kv_get(text, "cores_online"), *th = kv_get(text, "compute_threads");
        char *be = kv_get(text, "backend"), *isa = kv_get(text, "cpu_isa"); /* runs before 2026-12-03 have none */
        if (isa) isa[strcspn(isa, " ")] = 0;
        if (cpu && cores && th && be)
            hw = xasprintf("%s%s%s%s, %s cores online, backend %s, %s compute threads (from the provenance of run %s)",
                           cpu, isa ? " (oneDNN ISA " : "", isa ? isa : "", isa ? ")" : "", cores, be, th,
                           e->runs[i].id);
        free(cpu), free(cores), free(th), free(be), free(isa), free(text), free(p);
    }
    if (!hw) {
        char *here = hardware_line(e->n_runs ? e->runs[0].cfg.backend : "cpu");
        hw = xasprintf("%s (this machine: no finished run yet)", here);
        free(here);
    }
    char wall[32], train[32];
    fmt_duration(t->wall, wall, sizeof wall);
    fmt_duration(t->train, train, sizeof train);
    str_addf(md, "- **Hardware**: %s; each run's provenance.txt records its own\n", hw);
    free(hw);
    str_addf(md, "- **Wall time**: %s over %d of %d runs done (pretraining steps: %s)\n", wall, t->done, t->distinct,
             train);
    if (!has_paper(e)) {
        str_addf(md, "- **Paper**: none: this table is not one of the paper's\n"
                     "- **Cells**: ours (mean ± std over seeds), metric `%s` (linear top-1 is the last epoch's)\n\n",
                 t->metric);
        return;
    }
    str_addf(md, "- **Paper**: paper (submission text), `experiments/paper/%s` (only 73.1 on ImageNet-1K and "
                 "\"+2.5 over BYOL\" are confirmed in the final version)\n",
             strcmp(e->kind, "coco") == 0 ? "coco.csv" : "numbers.csv");
    if (strcmp(e->kind, "walltime") == 0)
        str_add(md, "- **Cells**: ours (hours of pretraining steps, mean ± std over seeds) | paper (hours on V100s) | "
                    "gap; the row \"RSA / BYOL\" compares the ratios, the point of the table\n");
    else
        str_addf(md, "- **Cells**: ours (mean ± std over seeds) | paper | gap (ours - paper), metric `%s` "
                     "(linear top-1 is the last epoch's; the official code's best-epoch number is "
                     "`linear_best_top1` in the CSV when enabled)\n",
                 t->metric);
    (void)ctx;
    str_add(md, "\n");
}

/* Table 7's ratio row: the ratio of the last row's metric to the first row's, paired by seed (the same seed's runs
 * share their data order and initialisation), over the seeds where both are done. Returns the number of pairs. */
static int paired_ratio(const Table *t, int col, double *mean, double *std) {
    const Experiment *e = t->e;
    const char *top = t->rows[t->n_rows - 1].label, *base = t->rows[0].label, *cl = t->cols[col].label;
    double sum = 0, sq = 0, v[256];
    int n = 0;
    for (int i = 0; i < e->n_runs && n < 256; i++) {
        if (strcmp(e->runs[i].row, top) != 0 || strcmp(e->runs[i].col, cl) != 0 || t->st[i].state != RUN_DONE) continue;
        for (int j = 0; j < e->n_runs; j++) {
            if (strcmp(e->runs[j].row, base) != 0 || strcmp(e->runs[j].col, cl) != 0 || e->runs[j].seed != e->runs[i].seed ||
                t->st[j].state != RUN_DONE)
                continue;
            double b = run_metric(&t->st[j], t->metric);
            if (b > 0) v[n++] = run_metric(&t->st[i], t->metric) / b, sum += v[n - 1];
            break;
        }
    }
    *mean = n ? sum / n : NAN, *std = NAN;
    if (n >= 2) {
        for (int k = 0; k < n; k++) sq += (v[k] - *mean) * (v[k] - *mean);
        *std = sqrt(sq / (n - 1));
    }
    return n;
}

static void write_tables(const Ctx *ctx, const Table *t, const char *base, Str *md) {
    const Experiment *e = t->e;
    Str csv = {0}, tex = {0};
    bool walltime = strcmp(e->kind, "walltime") == 0;
    /* Markdown */
    str_add(md, "| |");
    for (int c = 0; c < t->n_cols; c++) {
        str_add(md, " ");
        md_escape(md, t->cols[c].label);
        str_add(md, " |");
    }
    str_add(md, "\n|---|");
    for (int c = 0; c < t->n_cols; c++) str_add(md, "---|");
    str_add(md, "\n");
    str_add(&csv, "experiment,scale,row,col,comparable,runs,done,ours_mean,ours_std,paper_mean,paper_std,gap,status,"
                  "run_ids\n");
    /* LaTeX: per column three sub-columns (one without paper numbers) */
    bool paper_cells = has_paper(e);
    str_addf(&tex, "%% %s -- generated by rsa report (scale %s%s). Cells: %s.\n", e->title, e->scale,
             strcmp(e->scale, "paper") == 0 ? "" : "; NOT comparable with the paper",
             paper_cells ? "ours | paper | gap" : "ours (no paper numbers)");
    str_add(&tex, "\\begin{tabular}{l");
    for (int c = 0; c < t->n_cols; c++) str_add(&tex, paper_cells ? "|ccc" : "|c");
    str_add(&tex, "}\n\\hline\n");
    for (int c = 0; c < t->n_cols; c++) {
        str_add(&tex, paper_cells ? " & \\multicolumn{3}{c}{" : " & ");
        tex_escape(&tex, t->cols[c].label);
        if (paper_cells) str_add(&tex, "}");
    }
    str_add(&tex, " \\\\\n");
    if (paper_cells) {
        for (int c = 0; c < t->n_cols; c++) str_add(&tex, " & ours & paper & gap");
        str_add(&tex, " \\\\\n");
    }
    str_add(&tex, "\\hline\n");
    for (int r = 0; r < t->n_rows; r++) {
        str_add(md, "| ");
        md_escape(md, t->rows[r].label);
        str_add(md, " |");
        tex_escape(&tex, t->rows[r].label);
        for (int c = 0; c < t->n_cols; c++) {
            const Cell *cell = cell_at((Table *)t, r, c);
            char ours[128], paper[128], gap[128];
            cell_parts(t, cell, ours, paper, gap, sizeof ours);
            str_add(md, " ");
            md_escape(md, ours);
            if (paper_cells) {
                str_add(md, " \\| ");
                md_escape(md, paper);
                str_add(md, " \\| ");
                md_escape(md, gap);
            }
            str_add(md, " |");
            str_add(&tex, " & ");
            tex_escape(&tex, ours);
            if (paper_cells) {
                str_add(&tex, " & ");
                tex_escape(&tex, paper);
                str_add(&tex, " & ");
                tex_escape(&tex, gap);
            }
            /* CSV */
            csv_field(&csv, e->name), str_add(&csv, ","), csv_field(&csv, e->scale), str_add(&csv, ",");
            csv_field(&csv, t->rows[r].label), str_add(&csv, ","), csv_field(&csv, t->cols[c].label);
            str_addf(&csv, ",%s,%d,%d,", cell->col->standin || strcmp(e->scale, "paper") ? "no" : "yes",
                     cell->n_runs, cell->n_done);
            if (cell->n_done) str_addf(&csv, "%.4f,", cell->mean);
            else str_add(&csv, ",");
            if (!isnan(cell->std)) str_addf(&csv, "%.4f,", cell->std);
            else str_add(&csv, ",");
            if (cell->paper) str_addf(&csv, "%.4g,", cell->paper->mean);
            else str_add(&csv, ",");
            if (cell->paper && !isnan(cell->paper->std)) str_addf(&csv, "%.4g,", cell->paper->std);
            else str_add(&csv, ",");
            if (cell->n_done && cell->paper && !cell->col->standin) str_addf(&csv, "%.4f,", cell->mean - cell->paper->mean);
            else str_add(&csv, ",");
            csv_field(&csv, ours);
            str_add(&csv, ",");
            Str ids = {0};
            for (int i = 0; i < e->n_runs; i++)
                if (strcmp(e->runs[i].row, t->rows[r].label) == 0 && strcmp(e->runs[i].col, t->cols[c].label) == 0)
                    str_addf(&ids, "%s%s", ids.len ? " " : "", e->runs[i].id);
            csv_field(&csv, str_c(&ids));
            str_free(&ids);
            str_add(&csv, "\n");
        }
        str_add(md, "\n");
        str_add(&tex, " \\\\\n");
    }
    if (walltime && t->n_rows >= 2) {
        /* the ratio of the last row to the first (RSA / BYOL) */
        str_addf(md, "| %s / %s |", t->rows[t->n_rows - 1].label, t->rows[0].label);
        tex_escape(&tex, t->rows[t->n_rows - 1].label);
        str_add(&tex, " / ");
        tex_escape(&tex, t->rows[0].label);
        for (int c = 0; c < t->n_cols; c++) {
            const Cell *a = cell_at((Table *)t, t->n_rows - 1, c), *b = cell_at((Table *)t, 0, c);
            char ours[64] = "–", paper[64] = "–", gap[64] = "–";
            double ro = NAN, rp = NAN, rs = NAN;
            int pairs = paired_ratio(t, c, &ro, &rs);
            if (pairs >= 2) snprintf(ours, sizeof ours, "%.3f ± %.3f (%d seeds)", ro, rs, pairs);
            else if (pairs == 1) snprintf(ours, sizeof ours, "%.3f", ro);
            if (a->paper && b->paper) rp = a->paper->mean / b->paper->mean, snprintf(paper, sizeof paper, "%.3f", rp);
            if (!isnan(ro) && !isnan(rp) && !a->col->standin) snprintf(gap, sizeof gap, "%+.3f", ro - rp);
            else if (!isnan(ro) && a->col->standin) snprintf(gap, sizeof gap, "n/a (%s)", e->scale);
            str_addf(md, " %s \\| %s \\| %s |", ours, paper, gap);
            str_addf(&tex, " & %s & %s & %s", ours, paper, gap);
            csv_field(&csv, e->name), str_add(&csv, ","), csv_field(&csv, e->scale);
            str_add(&csv, ",ratio,");
            csv_field(&csv, t->cols[c].label);
            str_addf(&csv, ",%s,%d,%d,", a->col->standin || strcmp(e->scale, "paper") ? "no" : "yes", pairs, pairs);
            if (!isnan(ro)) str_addf(&csv, "%.4f", ro);
            str_add(&csv, ",");
            if (!isnan(rs)) str_addf(&csv, "%.4f", rs);
            str_add(&csv, ",");
            if (!isnan(rp)) str_addf(&csv, "%.4f", rp);
            str_add(&csv, ",,");
            if (!isnan(ro) && !isnan(rp) && !a->col->standin) str_addf(&csv, "%.4f", ro - rp);
            str_add(&csv, ",ratio,\n");
        }
        str_add(md, "\n");
        str_add(&tex, " \\\\\n");
    }
    str_add(&tex, "\\hline\n\\end{tabular}\n");
    char *csv_path = xasprintf("%s/%s.csv", ctx->results, base), *tex_path = xasprintf("%s/%s.tex", ctx->results, base);
    if (atomic_write_text(csv_path, str_c(&csv)) != 0 || atomic_write_text(tex_path, str_c(&tex)) != 0)
        fprintf(stderr, "rsa: %s\n", rsa_error_message());
    str_addf(md, "\nAlso: [%s.csv](%s.csv) (one row per cell, with run ids), [%s.tex](%s.tex) (LaTeX tabular).\n", base,
             base, base, base);
    free(csv_path), free(tex_path);
    str_free(&csv), str_free(&tex);
}

static void write_runs(const Ctx *ctx, const Table *t, Str *md) {
    const Experiment *e = t->e;
    str_add(md, "\n## Runs\n\n| run | labels | state | linear top-1 | best epoch top-1 | kNN | training | wall |\n"
                "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < e->n_runs; i++) {
        bool dup = false;
        for (int j = 0; j < i; j++) dup |= strcmp(e->runs[j].id, e->runs[i].id) == 0;
        if (dup) continue;
        const RunStatus *st = &t->st[i];
        char train[32] = "–", wall[32] = "–", lin[32] = "–", best[32] = "–", knn[32] = "–";
        if (st->state == RUN_DONE) {
            fmt_duration(st->train_seconds, train, sizeof train);
            fmt_duration(st->wall_seconds, wall, sizeof wall);
            snprintf(lin, sizeof lin, "%.2f", st->linear_top1);
            if (e->runs[i].cfg.linear_best_epoch) snprintf(best, sizeof best, "%.2f", st->linear_best_top1);
            if (st->knn_top1 >= 0) snprintf(knn, sizeof knn, "%.2f", st->knn_top1);
        }
        char *sched = xasprintf("%s/runs/%s/schedules.png", ctx->results, e->runs[i].id);
        str_addf(md, "| [%s](runs/%s/)", e->runs[i].id, e->runs[i].id);
        if (file_exists(sched)) str_addf(md, " ([schedules](runs/%s/schedules.png))", e->runs[i].id);
        str_add(md, " | ");
        free(sched);
        md_escape(md, e->runs[i].labels);
        str_addf(md, " | %s", run_state_name(st->state));
        if (st->state == RUN_FAILED && st->message) {
            str_add(md, ": ");
            char msg[240];
            snprintf(msg, sizeof msg, "%s", st->message);
            for (char *p = msg; *p; p++)
                if (*p == '\n') *p = ' ';
            md_escape(md, msg);
        }
        str_addf(md, " | %s | %s | %s | %s | %s |\n", lin, best, knn, train, wall);
    }
}

static int write_coco(const Ctx *ctx, const Table *t, const char *base, Str *md) {
    const Experiment *e = t->e;
    const char *metrics[] = {"APbb", "APbb50", "APbb75", "APmk", "APmk50", "APmk75", "APkp", "APkp50", "APkp75"};
    const char *d2[] = {"bbox/AP", "bbox/AP50", "bbox/AP75", "segm/AP", "segm/AP50", "segm/AP75",
                        "keypoints/AP", "keypoints/AP50", "keypoints/AP75"};
    int nm = strcmp(e->table, "T6") == 0 ? 6 : 9;
    char *dir = xasprintf("%s/%s/detectron2", ctx->results, base);
    char *metrics_text = NULL, *status = NULL;
    const ExpRun *bb = e->n_runs ? &e->runs[0] : NULL;
    if (bb) coco_prepare(ctx, e, bb, &t->st[0], dir, &metrics_text, &status);
    str_addf(md, "- **Backbone**: run `%s` (%s), state %s\n- **Detection**: %s\n\n", bb ? bb->id : "-",
             bb ? bb->labels : "", bb ? run_state_name(t->st[0].state) : "-", status ? status : "");
    str_add(md, "| method |");
    for (int m = 0; m < nm; m++) str_addf(md, " %s |", metrics[m]);
    str_add(md, "\n|---|");
    for (int m = 0; m < nm; m++) str_add(md, "---|");
    str_add(md, "\n");
    Str csv = {0}, tex = {0};
    str_add(&csv, "experiment,scale,row,metric,ours,paper,gap,status\n");
    str_addf(&tex, "%% %s -- generated by rsa report (scale %s%s).\n\\begin{tabular}{l", e->title, e->scale,
             strcmp(e->scale, "paper") == 0 ? "" : "; NOT comparable with the paper");
    for (int m = 0; m < nm; m++) str_add(&tex, "c");
    str_add(&tex, "}\n\\hline\nmethod");
    for (int m = 0; m < nm; m++) str_addf(&tex, " & %s", metrics[m]);
    str_add(&tex, " \\\\\n\\hline\n");
    /* paper rows in order of first appearance */
    for (int i = 0; i < t->paper.n; i++) {
        PaperRow *pr = &t->paper.rows[i];
        if (strcmp(pr->table, e->table) != 0) continue;
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= strcmp(t->paper.rows[j].table, e->table) == 0 &&
                                            strcmp(t->paper.rows[j].method, pr->method) == 0;
        if (seen) continue;
        bool ours_row = strcmp(pr->method, "RSA") == 0;
        str_addf(md, "| %s%s |", pr->method, ours_row ? " (paper)" : " (quoted)");
        tex_escape(&tex, pr->method);
        str_add(&tex, ours_row ? " (paper)" : " (quoted)");
        for (int m = 0; m < nm; m++) {
            PaperRow *v = paper_find((Paper *)&t->paper, e->table, pr->method, "", "coco", 0, metrics[m]);
            if (v) str_addf(md, " %.1f |", v->mean), str_addf(&tex, " & %.1f", v->mean);
            else str_add(md, " – |"), str_add(&tex, " & --");
            if (v) str_addf(&csv, "%s,%s,%s,%s,,%.1f,,paper\n", e->name, e->scale, pr->method, metrics[m], v->mean);
            else str_addf(&csv, "%s,%s,%s,%s,,,,paper\n", e->name, e->scale, pr->method, metrics[m]);
        }
        str_add(md, "\n");
        str_add(&tex, " \\\\\n");
    }
    str_addf(md, "| **RSA (ours, %s)** |", e->scale);
    str_addf(&tex, "\\hline\nRSA (ours, %s)", e->scale);
    for (int m = 0; m < nm; m++) {
        char *v = metrics_text ? kv_get(metrics_text, d2[m]) : NULL;
        PaperRow *p = paper_find((Paper *)&t->paper, e->table, "RSA", "", "coco", 0, metrics[m]);
        if (v) {
            double x = atof(v);
            if (strcmp(e->scale, "paper") == 0 && p)
                str_addf(md, " %.1f (gap %+.1f) |", x, x - p->mean);
            else
                str_addf(md, " %.1f |", x);
            str_addf(&tex, " & %.1f", x);
            str_addf(&csv, "%s,%s,RSA (ours),%s,%.2f,%.1f,%s,ran\n", e->name, e->scale, metrics[m], x,
                     p ? p->mean : NAN, "");
        } else {
            str_add(md, " not run |");
            str_add(&tex, " & not run");
            str_addf(&csv, "%s,%s,RSA (ours),%s,,,,not run: needs detectron2 and COCO\n", e->name, e->scale, metrics[m]);
        }
        free(v);
    }
    str_add(md, "\n");
    if (!metrics_text)
        str_addf(md, "\nOur row: **not run: needs detectron2 and COCO**. The files to run it are in `%s/` "
                     "(README.md there).\n", dir);
    str_add(&tex, " \\\\\n\\hline\n\\end{tabular}\n");
    char *csv_path = xasprintf("%s/%s.csv", ctx->results, base), *tex_path = xasprintf("%s/%s.tex", ctx->results, base);
    int rc = atomic_write_text(csv_path, str_c(&csv));
    if (rc == 0) rc = atomic_write_text(tex_path, str_c(&tex));
    str_addf(md, "\nAlso: [%s.csv](%s.csv), [%s.tex](%s.tex).\n", base, base, base, base);
    free(csv_path), free(tex_path), free(dir), free(metrics_text), free(status);
    str_free(&csv), str_free(&tex);
    return rc;
}

/* The command that runs experiment e at the paper scale: the make target of a shipped experiment file (the name
 * up to its first '_': experiments/fig3_beta.lua is reproduce-fig3), else this build's rsa run on the file itself (a
 * file of one's own, or a copy of a shipped one elsewhere, has no target); under a launcher, the launcher's command. */
static void paper_scale_command(const Experiment *e, char *out, size_t n) {
    const char *file = e->file ? e->file : "";
    if (world_size() > 1) { /* make would start one process */
        snprintf(out, n, "mpirun -np %d " RSA_PROGRAM " run %s --scale paper", world_size(), file);
        return;
    }
    static const char *const shipped[] = {"table1", "table2", "table3",    "table4",   "table5",
                                          "table6", "table7", "fig3_beta", "precision"};
    size_t fl = strlen(file);
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[64];
        size_t pl = (size_t)snprintf(path, sizeof path, "experiments/%s.lua", shipped[i]);
        if (fl >= pl && strcmp(file + fl - pl, path) == 0 && (fl == pl || file[fl - pl - 1] == '/')) {
            snprintf(out, n, "make reproduce-%.*s SCALE=paper%s%s", (int)strcspn(shipped[i], "_"), shipped[i],
                     RSA_MAKE_VARIANT[0] ? " " : "", RSA_MAKE_VARIANT);
            return;
        }
    }
    snprintf(out, n, RSA_PROGRAM " run %s --scale paper", file);
}

int report_write(const Ctx *ctx, const Experiment *e) {
    char base[256];
    report_base(e, base, sizeof base);
    Table t;
    table_build(ctx, e, &t);
    Str md = {0};
    write_header(ctx, &t, &md);
    int rc = 0;
    if (strcmp(e->kind, "coco") == 0) {
        rc = write_coco(ctx, &t, base, &md);
    } else {
        write_tables(ctx, &t, base, &md);
    }
    /* plots */
    char *dir = plot_dir_of(ctx, e);
    Str plots = {0};
    if (plot_available() && make_dirs(dir) == 0) {
        if (strcmp(e->kind, "beta_curve") == 0) plot_beta(&t, dir, &plots);
        if (strcmp(e->kind, "walltime") == 0) plot_walltime(&t, dir, &plots);
        if (strcmp(e->kind, "coco") != 0) plot_curves(ctx, &t, dir, &plots);
    }
    if (plots.len) str_addf(&md, "\n## Plots\n\nEach plot's gnuplot script and data sit beside it: edit, then "
                                 "`gnuplot NAME.gp` in that directory.\n\n%s", str_c(&plots));
    else if (!plot_available()) str_add(&md, "\n(No plots: gnuplot is not installed; `make deps` installs gnuplot-nox.)\n");
    bool had_plots = plots.len > 0;
    str_free(&plots);
    write_runs(ctx, &t, &md);
    char *path = xasprintf("%s/%s.md", ctx->results, base);
    if (atomic_write_text(path, str_c(&md)) != 0) {
        rc = -1;
    } else {
        printf("report: %s (also .csv, .tex)\n", path);
        if (had_plots) printf("plots:  %s/ (PNG and SVG, each with its gnuplot script and data)\n", dir);
        if (e->scale && e->scale[0] && strcmp(e->scale, "paper") != 0) {
            char how[512];
            paper_scale_command(e, how, sizeof how);
            printf("this was the %s scale, not the paper's protocol: put the data sets under data/ (REPRODUCE.md, "
                   "\"Data sets\"; `" RSA_PROGRAM " help data` lists what is present) and run `%s`\n", e->scale, how);
        }
    }
    free(dir);
    free(path);
    str_free(&md);
    table_free(&t);
    return rc;
}

/* A report of one experiment and scale: *.md other than the index itself. */
static bool is_report_file(const char *name) {
    size_t len = strlen(name);
    return len > 3 && strcmp(name + len - 3, ".md") == 0 && strcmp(name, "REPORT.md") != 0;
}

int report_index(const Ctx *ctx) {
    size_t n;
    char **names = list_dir(ctx->results, is_report_file, &n);
    if (!names) return rsa_fail("run an experiment first", "cannot read %s", ctx->results);
    Str md = {0};
    str_add(&md, "# rsa-repro results\n\nOne report per experiment and scale, rebuilt by `rsa run` and `make report`. "
                 "Reports at a reduced scale (quick, smoke) are **not comparable with the paper** and say so.\n\n"
                 "| report | scale | comparable with the paper |\n|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", ctx->results, names[i]);
        char *text = slurp(p);
        char title[256] = "", scale[32] = "?";
        if (text) {
            if (text[0] == '#') {
                char *nl = strchr(text, '\n');
                size_t len = nl ? (size_t)(nl - text) : strlen(text);
                snprintf(title, sizeof title, "%.*s", (int)(len > 2 ? len - 2 : 0), text + 2);
            }
            char *m = strstr(text, "rsa-report scale=");
            if (m) sscanf(m, "rsa-report scale=%31s", scale);
        }
        str_add(&md, "| [");
        md_escape(&md, title[0] ? title : names[i]);
        str_addf(&md, "](%s) | %s | %s |\n", names[i], scale, strcmp(scale, "paper") == 0 ? "yes" : "**no**");
        free(text), free(p);
    }
    free_strings(names, n);
    str_add(&md, "\nRuns live in `runs/<run-id>/` (config.lua is the resolved config; config.sha256 its hash; "
                 "provenance.txt, the trainer's files, log.txt; DONE marks a finished run).\n");
    char *path = xasprintf("%s/REPORT.md", ctx->results);
    int rc = atomic_write_text(path, str_c(&md));
    if (rc == 0) printf("index: %s\n", path);
    free(path);
    str_free(&md);
    return rc;
}
