/* rsa: the command-line entry point. */
#include "trainer/backend/backend.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *out) {
    fprintf(out, "usage: rsa <command> [options]\n"
                 "commands:\n"
                 "  version    print the build's version and backends\n"
                 "  help       this text\n");
    return out == stderr ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) return usage(stdout);
    if (strcmp(argv[1], "version") == 0) {
        printf("rsa-repro 0.1\nbackends: ref cpu%s\n", backend_cuda() ? " cuda" : "");
        return 0;
    }
    fprintf(stderr, "rsa: unknown command \"%s\"\n", argv[1]);
    return usage(stderr);
}
