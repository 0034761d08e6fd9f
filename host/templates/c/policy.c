// {{name}}: a vane balancing policy, as `vane plugin new` wrote it. Make it yours.
//
// Among the backends that may receive the request, the one with the fewest requests in flight
// per unit of weight goes first; ties take turns. The answer ranks `ranked` backends (default 2):
// the first choice, then where a retry goes. Config: "" or "ranked=N", N from 1 to 8.
//
// `states` holds the state bits of every backend (bit 0: it may receive this request), then the
// columns asked for in `needs.columns`, in the order `columns` declares them: here weight, then
// in-flight, one number per backend each.
//
// Ownership (wit-bindgen C): the guest owns every argument of an exported function and must free
// it; the values it returns must be heap-allocated, and the generated cabi_post_* functions free
// them after the host has copied them out.

#include "balancer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_RANKED 2
#define MAX_RANKED 8
#define ELIGIBLE 1u
// The columns `pick` reads, and so how many numbers per backend `states` holds (with the state bits).
#define COLUMNS (VANE_BALANCER_TYPES_COLUMNS_WEIGHT | VANE_BALANCER_TYPES_COLUMNS_IN_FLIGHT)
#define ROW_NUMBERS 3

// The state kept between calls.
static size_t ranked = DEFAULT_RANKED;

// `message`, heap-allocated (the post-return frees it).
static void error(balancer_string_t *err, const char *message) {
    balancer_string_dup(err, message);
}

bool exports_vane_balancer_policy_configure(balancer_string_t *config,
                                            exports_vane_balancer_policy_list_backend_info_t *backends,
                                            exports_vane_balancer_policy_needs_t *ret,
                                            balancer_string_t *err) {
    static const char key[] = "ranked=";
    size_t key_len = sizeof key - 1;
    bool ok = true;
    size_t wanted = DEFAULT_RANKED;
    if (config->len > 0) {
        // "ranked=N" with N a single digit from 1 to MAX_RANKED.
        if (config->len == key_len + 1 && memcmp(config->ptr, key, key_len) == 0 &&
            config->ptr[key_len] >= '1' && config->ptr[key_len] <= '0' + MAX_RANKED) {
            wanted = (size_t)(config->ptr[key_len] - '0');
        } else {
            error(err, "unknown config: expected \"\" or ranked=N with N from 1 to 8");
            ok = false;
        }
    }
    balancer_string_free(config);
    exports_vane_balancer_policy_list_backend_info_free(backends);
    if (!ok) return false;

    ranked = wanted;
    // needs { headers: [], feedback: false, target: false, columns: COLUMNS }.
    ret->headers.len = 0;
    ret->headers.ptr = NULL;
    ret->feedback = false;
    ret->target = false;
    ret->columns = COLUMNS;
    return true;
}

void exports_vane_balancer_policy_pick(exports_vane_balancer_policy_request_t *request,
                                       balancer_list_u64_t *states,
                                       balancer_list_u32_t *ret) {
    size_t n = states->len / ROW_NUMBERS;
    const uint64_t *weights = states->ptr + n;
    const uint64_t *in_flight = states->ptr + 2 * n;
    uint64_t keys[MAX_RANKED][2];
    uint32_t best[MAX_RANKED];
    size_t kept = 0;

    // The `ranked` smallest (load, turn) among the eligible backends, kept in order by insertion.
    // turn is distinct for every backend, so no two keys are equal.
    uint64_t shift = n ? request->sequence % n : 0;
    for (size_t i = 0; i < n; i++) {
        if ((states->ptr[i] & ELIGIBLE) == 0) continue;
        uint64_t load = in_flight[i] * 1000 / (weights[i] ? weights[i] : 1);
        uint64_t turn = ((uint64_t)i + n - shift) % n;
        size_t at = kept;
        while (at > 0 && (keys[at - 1][0] > load || (keys[at - 1][0] == load && keys[at - 1][1] > turn))) {
            at--;
        }
        if (at >= ranked) continue;
        if (kept < ranked) kept++;
        for (size_t j = kept - 1; j > at; j--) {
            keys[j][0] = keys[j - 1][0];
            keys[j][1] = keys[j - 1][1];
            best[j] = best[j - 1];
        }
        keys[at][0] = load;
        keys[at][1] = turn;
        best[at] = (uint32_t)i;
    }

    // The answer is heap-allocated (the post-return frees it); [] declines, with nothing to free.
    ret->len = kept;
    ret->ptr = NULL;
    if (kept) {
        ret->ptr = malloc(kept * sizeof *ret->ptr);
        if (!ret->ptr) abort();
        memcpy(ret->ptr, best, kept * sizeof *ret->ptr);
    }

    exports_vane_balancer_policy_request_free(request);
    balancer_list_u64_free(states);
}

void exports_vane_balancer_policy_observe(exports_vane_balancer_policy_list_outcome_t *outcomes) {
    exports_vane_balancer_policy_list_outcome_free(outcomes);
}
