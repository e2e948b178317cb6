// ktrace: a CUDA injection library that records every kernel and memory copy a process runs on the GPU
// (CUPTI activity API) and writes them to $KTRACE_OUT when the process exits. gatecut uses it to see
// where ONNX Runtime's CUDA time goes in a dense and a compiled model (tools/ktrace_summary.py); ORT's
// own profiler only times the host side of asynchronous kernels.
//
// Build (any machine with the CUDA 13 headers):  bash tools/ktrace/build.sh
// Use:  CUDA_INJECTION64_PATH=$PWD/tools/ktrace/libktrace.so KTRACE_OUT=trace.tsv <command>
// Output lines (tab separated, times in ns on the GPU clock):
//   K  start  end  name            a kernel
//   M  start  end  bytes  kind     a memory copy (kind: 1 host→device, 2 device→host, 8 device→device, ...)
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (8 * 1024 * 1024)
static FILE *out;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = (uint8_t *) aligned_alloc(8, BUF_SIZE);
    *size = BUF_SIZE;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    CUpti_Activity *record = NULL;
    while (out && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *) record;
            fprintf(out, "K\t%llu\t%llu\t%s\n", (unsigned long long) k->start, (unsigned long long) k->end, k->name);
        } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            CUpti_ActivityMemcpy6 *m = (CUpti_ActivityMemcpy6 *) record;
            fprintf(out, "M\t%llu\t%llu\t%llu\t%u\n", (unsigned long long) m->start, (unsigned long long) m->end,
                    (unsigned long long) m->bytes, (unsigned) m->copyKind);
        }
    }
    free(buffer);
}

static void flush_at_exit(void) {
    cuptiActivityFlushAll(1);
    if (out) {
        fclose(out);
        out = NULL;
    }
}

int InitializeInjection(void) {
    const char *path = getenv("KTRACE_OUT");
    out = fopen(path ? path : "ktrace.tsv", "w");
    if (!out) {
        perror("ktrace: cannot open KTRACE_OUT");
        return 0;
    }
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS
            || cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS
            || cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS) {
        fprintf(stderr, "ktrace: CUPTI refused to record activity\n");
        return 0;
    }
    atexit(flush_at_exit);
    return 1;
}
