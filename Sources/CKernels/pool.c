// A persistent pool for the matrix products of a forward pass: at one token a step has ~200 products
// of a few µs each, too short for a dispatch per product, and a prompt's ~200 products of a few
// hundred µs each still lose a tenth of their time to waking dispatch threads. Each worker spins
// briefly on its own epoch counter, then sleeps on a condition variable; a job (a function called
// once per part, each part one thread's fixed share of the work) bumps the counters of the workers
// it needs only.
#include "ckernels.h"

#include <pthread.h>
#include <stdatomic.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AV_PAUSE() _mm_pause()
#else
#define AV_PAUSE() ((void)0)
#endif

enum { AV_POOL_MAX = 16 };

// One job: fn(context, part, parts) for each part.
typedef struct {
    void (*fn)(void *context, int part, int parts);
    void *context;
    int parts;
} av_job;

static long start_epoch[AV_POOL_MAX];
// The calling thread's jobs: split over the pool's threads, or run alone because the pool was held.
static _Thread_local unsigned long split_jobs, alone_jobs;
static atomic_flag busy = ATOMIC_FLAG_INIT;

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_long epoch[AV_POOL_MAX];  // per worker: bumped for each job it takes part in
    atomic_int done;
    atomic_int sleepers;
    int started;
    av_job job;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void run_part(const av_job *j, int part) { j->fn(j->context, part, j->parts); }

static void *worker(void *arg) {
    const int part = (int)(intptr_t)arg;
    long seen = start_epoch[part];  // the epoch before the first job this worker must run
    for (;;) {
        long now;
        int spins = 0;
        while ((now = atomic_load_explicit(&pool.epoch[part], memory_order_acquire)) == seen) {
            if (++spins < 50000) {
                AV_PAUSE();
                continue;
            }
            pthread_mutex_lock(&pool.mutex);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.epoch[part]) == seen) pthread_cond_wait(&pool.wake, &pool.mutex);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mutex);
        }
        seen = now;
        const av_job job = pool.job;
        run_part(&job, part);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
    return NULL;
}

// Runs job on the pool's threads and the caller's (job.parts = threads wanted).
static void run(av_job job, int threads) {
    if (threads > AV_POOL_MAX) threads = AV_POOL_MAX;
    // One caller at a time uses the pool; another (a concurrent evaluation) runs on its own thread.
    if (threads < 2 || atomic_flag_test_and_set(&busy)) {
        if (threads >= 2) alone_jobs++;
        job.parts = 1;
        run_part(&job, 0);
        return;
    }
    // Workers 1..threads-1, started once (the pool only grows).
    pthread_mutex_lock(&pool.mutex);
    while (pool.started < threads - 1) {
        pthread_t t;
        start_epoch[pool.started + 1] = atomic_load(&pool.epoch[pool.started + 1]);
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)(pool.started + 1)) != 0) break;
        pthread_detach(t);
        pool.started++;
    }
    const int helpers = pool.started < threads - 1 ? pool.started : threads - 1;
    pthread_mutex_unlock(&pool.mutex);
    job.parts = helpers + 1;
    if (job.parts > 1) split_jobs++;
    else alone_jobs++;
    pool.job = job;
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    // Only the workers this job needs are woken: a pool grown by a caller that wanted more threads
    // costs later jobs nothing.
    for (int part = 1; part < job.parts; part++) atomic_fetch_add(&pool.epoch[part], 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mutex);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mutex);
    }
    run_part(&pool.job, 0);
    // Each woken worker answers once it has run its part (and read the job: it may then change).
    while (atomic_load_explicit(&pool.done, memory_order_acquire) < job.parts - 1) AV_PAUSE();
    atomic_flag_clear(&busy);
}

void av_pool_take_counts(unsigned long *split, unsigned long *alone) {
    *split = split_jobs;
    *alone = alone_jobs;
    split_jobs = alone_jobs = 0;
}

void av_pool_run(void (*fn)(void *context, int part, int parts), void *context, int threads) {
    run((av_job){fn, context, 1}, threads);
}

// A decode step's matrix-vector product, its rows split evenly over the parts.
typedef struct {
    const av_kernels *table;
    int bf16;
    const void *w;
    size_t rows, cols;
    const float *x;
    float *y;
} vector_job;

static void vector_part(void *context, int part, int parts) {
    const vector_job *j = context;
    const size_t lo = j->rows * (size_t)part / (size_t)parts;
    const size_t hi = j->rows * (size_t)(part + 1) / (size_t)parts;
    if (lo >= hi) return;
    const size_t size = j->bf16 ? 2 : 4;
    const void *w = (const char *)j->w + lo * j->cols * size;
    if (j->bf16) j->table->matmul_bf16((const uint16_t *)w, hi - lo, j->cols, j->x, 1, j->y + lo, 1);
    else j->table->matmul_f32((const float *)w, hi - lo, j->cols, j->x, 1, j->y + lo, 1);
}

int av_matmul_vector_pool(const av_kernels *table, int bf16, const void *w, size_t rows, size_t cols,
                          const float *x, float *y, int threads) {
    if (!(bf16 ? (void *)table->matmul_bf16 : (void *)table->matmul_f32)) return 0;
    vector_job job = {table, bf16, w, rows, cols, x, y};
    av_pool_run(vector_part, &job, threads);
    return 1;
}
