#include "store.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

char *run_dir(const char *results, const char *id) { return xasprintf("%s/runs/%s", results, id); }

const char *run_state_name(RunState s) {
    switch (s) {
    case RUN_TODO: return "todo";
    case RUN_PARTIAL: return "partial";
    case RUN_DONE: return "done";
    case RUN_FAILED: return "failed";
    }
    return "?";
}

static char *in_run(const char *results, const char *id, const char *file) {
    return xasprintf("%s/runs/%s/%s", results, id, file);
}

void store_status(const char *results, const char *id, RunStatus *st) {
    memset(st, 0, sizeof *st);
    st->linear_top1 = st->linear_top5 = st->linear_best_top1 = st->knn_top1 = -1;
    char *dir = run_dir(results, id);
    char *done = in_run(results, id, "DONE"), *failed = in_run(results, id, "FAILED");
    char *result = in_run(results, id, "result.txt"), *ckpt = in_run(results, id, "checkpoint.safetensors");
    char *epochs = in_run(results, id, "epochs.tsv"), *wall = in_run(results, id, "wall.txt");
    if (!dir_exists(dir)) {
        st->state = RUN_TODO;
    } else if (file_exists(done)) {
        st->state = RUN_DONE;
    } else if (file_exists(failed)) {
        st->state = RUN_FAILED;
        char *m = slurp(failed);
        if (m) {
            size_t n = strlen(m);
            while (n > 0 && m[n - 1] == '\n') m[--n] = 0;
        }
        st->message = m ? m : xstrdup("(unreadable FAILED file)");
        st->unsupported = strstr(st->message, "not implemented yet") != NULL;
    } else {
        st->state = file_exists(ckpt) || file_exists(epochs) ? RUN_PARTIAL : RUN_TODO;
    }
    char *text = slurp(result);
    if (text && st->state == RUN_DONE) {
        st->has_result = true;
        st->linear_top1 = kv_num(text, "linear_top1", -1);
        st->linear_top5 = kv_num(text, "linear_top5", -1);
        st->linear_best_top1 = kv_num(text, "linear_best_top1", -1);
        st->knn_top1 = kv_num(text, "knn_top1", -1);
        st->train_seconds = kv_num(text, "train_seconds", 0);
    }
    free(text);
    char *e = slurp(epochs);
    if (e) {
        for (char *p = strchr(e, '\n'); p && p[1]; p = strchr(p + 1, '\n')) st->epochs_done++;
        free(e);
    }
    char *w = slurp(wall);
    if (w) {
        for (char *line = w; line && *line;) {
            st->wall_seconds += atof(line);
            char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : NULL;
        }
        free(w);
    }
    free(dir), free(done), free(failed), free(result), free(ckpt), free(epochs), free(wall);
}

void run_status_free(RunStatus *st) {
    free(st->message);
    st->message = NULL;
}

int store_prepare(const char *results, const ExpRun *r, const Experiment *e, const char *command,
                  const char *overrides) {
    char *dir = run_dir(results, r->id);
    int rc = -1;
    char *hash_path = in_run(results, r->id, "config.sha256"), *cfg_path = in_run(results, r->id, "config.lua");
    char *run_path = in_run(results, r->id, "run.lua");
    Str run = {0}, cfg = {0};
    if (make_dirs(dir) != 0) goto done;
    char *old = slurp(hash_path);
    if (old && strncmp(old, r->hash, 64) != 0) {
        rsa_fail("move the directory away; run ids are the first digits of the config hash, and this one holds another "
                 "config", "%s holds a run with config hash %.64s, not %s", dir, old, r->hash);
        free(old);
        goto done;
    }
    bool fresh = !old;
    free(old);
    if (fresh) {
        str_addf(&cfg, "-- rsa-repro resolved run config: the identity of run %s.\n"
                       "-- Canonical (sorted keys, Lua syntax); config.sha256 is the SHA-256 of the text after "
                       "\"return \".\nreturn %s\n", r->id, r->canonical);
        char line[80];
        snprintf(line, sizeof line, "%s\n", r->hash);
        if (atomic_write_text(cfg_path, str_c(&cfg)) != 0 || atomic_write_text(hash_path, line) != 0) goto done;
    }
    /* run.lua: the settings of the latest session and every experiment that used the run */
    str_addf(&run, "-- Settings of run %s that are not part of its identity, and where it was used.\nreturn {\n",
             r->id);
    str_addf(&run, "  settings = %s,\n", r->settings);
    str_addf(&run, "  seed = %d,\n", r->seed);
    str_add(&run, "  command = "), lua_quote(&run, command);
    str_add(&run, ",\n  overrides = "), lua_quote(&run, overrides ? overrides : "");
    str_add(&run, ",\n  experiment = { file = "), lua_quote(&run, e->file);
    str_add(&run, ", name = "), lua_quote(&run, e->name);
    str_add(&run, ", scale = "), lua_quote(&run, e->scale);
    str_add(&run, ", labels = "), lua_quote(&run, r->labels);
    str_add(&run, ", row = "), lua_quote(&run, r->row);
    str_add(&run, ", col = "), lua_quote(&run, r->col);
    str_add(&run, " },\n}\n");
    if (atomic_write_text(run_path, str_c(&run)) != 0) goto done;
    rc = 0;
done:
    str_free(&run), str_free(&cfg);
    free(dir), free(hash_path), free(cfg_path), free(run_path);
    return rc;
}

int store_mark_done(const char *results, const char *id, double wall_seconds) {
    char *p = in_run(results, id, "DONE");
    char when[64], text[256];
    utc_now(when, sizeof when);
    snprintf(text, sizeof text, "finished = %s\nwall_seconds = %.1f\n", when, wall_seconds);
    int rc = atomic_write_text(p, text);
    free(p);
    return rc;
}

int store_mark_failed(const char *results, const char *id, const char *message) {
    char *p = in_run(results, id, "FAILED");
    char *text = xasprintf("%s\n", message);
    int rc = atomic_write_text(p, text);
    free(text), free(p);
    return rc;
}

int store_clear_failed(const char *results, const char *id) {
    char *p = in_run(results, id, "FAILED");
    int rc = 0;
    if (unlink(p) != 0 && errno != ENOENT) rc = rsa_fail("check permissions", "cannot remove %s: %s", p, strerror(errno));
    free(p);
    return rc;
}

int store_add_wall(const char *results, const char *id, double seconds, const char *what) {
    char *p = in_run(results, id, "wall.txt");
    char *old = slurp(p);
    char when[64];
    utc_now(when, sizeof when);
    char *text = xasprintf("%s%.1f\t%s\t%s\n", old ? old : "", seconds, what, when);
    int rc = atomic_write_text(p, text);
    free(text), free(old), free(p);
    return rc;
}

void store_log(const char *results, const char *id, const char *line) {
    char *p = in_run(results, id, "log.txt");
    FILE *f = fopen(p, "a");
    if (f) {
        char when[64];
        utc_now(when, sizeof when);
        fprintf(f, "%s %s\n", when, line);
        fclose(f);
    }
    free(p);
}

int store_lock(const char *results, const char *command) {
    if (make_dirs(results) != 0) return -1;
    char *p = xasprintf("%s/.lock", results);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        rsa_fail("check the permissions of the results directory", "cannot open %s: %s", p, strerror(err));
        free(p);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[512] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        for (char *c = holder; *c; c++)
            if (*c == '\n') *c = ';';
        close(fd);
        if (err == EWOULDBLOCK)
            rsa_fail("wait for it to finish (or stop it with Ctrl-C: it checkpoints), or give this run another "
                     "--results DIR",
                     "another rsa process is using %s (%s)", results, holder[0] ? holder : "holder unknown");
        else
            rsa_fail("check the file system", "cannot lock %s: %s", p, strerror(err));
        free(p);
        return -1;
    }
    char when[64];
    utc_now(when, sizeof when);
    char *text = xasprintf("pid %ld, started %s, command: %s\n", (long)getpid(), when, command);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, strlen(text), 0) < 0) {
        /* the lock holds anyway; the text only helps the message of a second process */
    }
    free(text);
    free(p);
    return fd;
}

void store_unlock(int fd) {
    if (fd >= 0) {
        if (ftruncate(fd, 0) != 0) { /* nothing to do: the lock goes with the descriptor */
        }
        flock(fd, LOCK_UN);
        close(fd);
    }
}

int store_record_experiment(const char *results, const char *file, const char *scale, int seeds, const char *sets,
                            int world) {
    char *p = xasprintf("%s/experiments.tsv", results);
    char *old = slurp(p);
    /* the world is part of data-parallel runs' ids: rsa report must expand with it to find them */
    char wfield[32] = "";
    if (world > 1) snprintf(wfield, sizeof wfield, "\tworld=%d", world);
    char *line = xasprintf("%s\t%s\t%d\t%s%s\n", file, scale, seeds, sets ? sets : "", wfield);
    int rc = 0;
    if (!old || !strstr(old, line)) {
        /* one line per (file, scale): a newer seeds/overrides choice replaces the older line */
        Str b = {0};
        char *prefix = xasprintf("%s\t%s\t", file, scale);
        for (char *l = old; l && *l;) {
            char *nl = strchr(l, '\n');
            size_t len = nl ? (size_t)(nl - l + 1) : strlen(l);
            if (strncmp(l, prefix, strlen(prefix)) != 0) {
                char *copy = xcalloc(len + 1, 1);
                memcpy(copy, l, len);
                str_add(&b, copy);
                free(copy);
            }
            l = nl ? nl + 1 : NULL;
        }
        str_add(&b, line);
        rc = atomic_write_text(p, str_c(&b));
        str_free(&b);
        free(prefix);
    }
    free(line), free(old), free(p);
    return rc;
}
