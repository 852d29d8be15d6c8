/* replay_main.h - the fuzz targets' main() when built without libFuzzer (-DDS_FUZZ_MAIN): replay
 * each file named on the command line through LLVMFuzzerTestOneInput. Include it last. */
#ifdef DS_FUZZ_MAIN
int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        size_t len;
        ds_error err;
        char *d = ds_read_file(argv[i], 0, &len, &err);
        if (!d) { fprintf(stderr, "%s\n", err.msg); return 1; }
        LLVMFuzzerTestOneInput((const uint8_t *)d, len);
        free(d);
    }
    printf("replayed %d file(s)\n", argc - 1);
    return 0;
}
#endif
