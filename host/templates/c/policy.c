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

// Whether backend i may receive this request: bit 0 of its state bits.
static bool eligible(const balancer_list_u64_t *states, size_t i) {
    return (states->ptr[i] & ELIGIBLE) != 0;
}

void exports_vane_balancer_policy_pick(exports_vane_balancer_policy_request_t *request,
                                       balancer_list_u64_t *states,
                                       balancer_list_u32_t *ret) {
    size_t n = states->len / ROW_NUMBERS;
    const uint64_t *weights = states->ptr + n;
    const uint64_t *in_flight = states->ptr + 2 * n;
    uint32_t best[MAX_RANKED];
    size_t kept = 0;

    // Ties take turns: the eligible backends are visited in order from the (sequence % m)-th
    // of the m, and one only goes before those visited earlier if it is strictly less loaded.
    size_t m = 0, first = 0;
    for (size_t i = 0; i < n; i++) m += eligible(states, i);
    if (m > 0) {
        uint64_t skip = request->sequence % m;
        while (!eligible(states, first) || skip > 0) {
            if (eligible(states, first)) skip--;
            first++;
        }
    }
    for (size_t k = 0; k < n && m > 0; k++) {
        size_t i = (first + k) % n;
        if (!eligible(states, i)) continue;
        // Fewest in flight per unit of weight first, compared exactly: a/b < c/d as a*d < c*b.
        uint64_t weight = weights[i] ? weights[i] : 1;
        size_t at = kept;
        while (at > 0) {
            uint32_t j = best[at - 1];
            uint64_t other = weights[j] ? weights[j] : 1;
            if (in_flight[i] * other >= in_flight[j] * weight) break;
            at--;
        }
        if (at >= ranked) continue;
        if (kept < ranked) kept++;
        for (size_t j = kept - 1; j > at; j--) best[j] = best[j - 1];
        best[at] = (uint32_t)i;
    }

    // The answer is heap-allocated (the post-return frees it); [] declines (vane's built-in
    // round-robin serves the request), with nothing to free.
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
