// vane example policy "fastest", in C (the strategy of the Rust, Python and JavaScript examples).
//
// configure: config "" or "header=NAME" (default NAME "x-vane-pin"); remembers the backend names.
// pick:      the backend pinned by header NAME (if healthy), then the healthy backends by ascending
//            (latency_ewma_us * 1000 / weight, rotation by sequence), at most 3; [] if none healthy.
// observe:   never called (feedback = false); frees its argument.
//
// `states` holds the state bits of every backend (bit 0: it may receive this request), then the
// columns asked for in `needs.columns`, in the order `columns` declares them: here weight, then
// latency-ewma-us, one number per backend each.
//
// Ownership (wit-bindgen C): the guest owns every argument of an exported function and must free
// it; the values it returns must be heap-allocated, and the generated cabi_post_* functions free
// them after the host has copied them out.

#include "balancer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HEADER "x-vane-pin"
#define HEADER_PREFIX "header="
#define MAX_ANSWER 3
#define ELIGIBLE 1u
// The columns `pick` reads, and so how many numbers per backend `states` holds (with the state bits).
#define COLUMNS (VANE_BALANCER_TYPES_COLUMNS_WEIGHT | VANE_BALANCER_TYPES_COLUMNS_LATENCY_EWMA_US)
#define ROW_NUMBERS 3

// The state kept between calls: the pin header's name and the backends' names, in order.
static balancer_string_t pin_header;
static balancer_string_t *names;
static size_t names_len;

static bool same(const balancer_string_t *a, const uint8_t *ptr, size_t len) {
    return a->len == len && (len == 0 || memcmp(a->ptr, ptr, len) == 0);
}

static void forget_names(void) {
    for (size_t i = 0; i < names_len; i++) {
        balancer_string_free(&names[i]);
    }
    free(names);
    names = NULL;
    names_len = 0;
}

// "unknown config <config>: expected header=NAME", heap-allocated (the post-return frees it).
static void unknown_config(const balancer_string_t *config, balancer_string_t *err) {
    static const char head[] = "unknown config ";
    static const char tail[] = ": expected header=NAME";
    size_t head_len = sizeof head - 1, tail_len = sizeof tail - 1;
    err->len = head_len + config->len + tail_len;
    err->ptr = malloc(err->len);
    if (!err->ptr) abort();
    memcpy(err->ptr, head, head_len);
    if (config->len) memcpy(err->ptr + head_len, config->ptr, config->len);
    memcpy(err->ptr + head_len + config->len, tail, tail_len);
}

bool exports_vane_balancer_policy_configure(balancer_string_t *config,
                                            exports_vane_balancer_policy_list_backend_info_t *backends,
                                            exports_vane_balancer_policy_needs_t *ret,
                                            balancer_string_t *err) {
    size_t prefix_len = sizeof HEADER_PREFIX - 1;
    balancer_string_t header;
    if (config->len == 0) {
        balancer_string_dup(&header, DEFAULT_HEADER);
    } else if (config->len > prefix_len && memcmp(config->ptr, HEADER_PREFIX, prefix_len) == 0) {
        balancer_string_dup_n(&header, (const char *)config->ptr + prefix_len, config->len - prefix_len);
    } else {
        unknown_config(config, err);
        balancer_string_free(config);
        exports_vane_balancer_policy_list_backend_info_free(backends);
        return false;
    }

    // Keep each backend's name, taken over from the argument; free the rest of the argument.
    forget_names();
    names_len = backends->len;
    names = names_len ? calloc(names_len, sizeof *names) : NULL;
    if (names_len && !names) abort();
    for (size_t i = 0; i < names_len; i++) {
        names[i] = backends->ptr[i].name;
        backends->ptr[i].name.ptr = NULL;
        backends->ptr[i].name.len = 0;
    }
    exports_vane_balancer_policy_list_backend_info_free(backends);
    balancer_string_free(config);

    balancer_string_free(&pin_header);
    pin_header = header;

    // needs { headers: [NAME], feedback: false, target: false, columns: COLUMNS }, heap-allocated
    // for the post-return.
    ret->headers.len = 1;
    ret->headers.ptr = malloc(sizeof *ret->headers.ptr);
    if (!ret->headers.ptr) abort();
    balancer_string_dup_n(&ret->headers.ptr[0], (const char *)pin_header.ptr, pin_header.len);
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
    const uint64_t *latencies = states->ptr + 2 * n;
    uint32_t answer[MAX_ANSWER];
    size_t count = 0;

    // The pinned backend: the first header NAME whose value names a healthy backend.
    bool pinned = false;
    uint32_t pin = 0;
    const vane_balancer_types_list_header_t *headers = &request->headers.val;
    for (size_t h = 0; request->headers.is_some && h < headers->len && !pinned; h++) {
        const vane_balancer_types_header_t *header = &headers->ptr[h];
        if (!same(&pin_header, header->name.ptr, header->name.len)) continue;
        for (size_t i = 0; i < n && i < names_len; i++) {
            if (eligible(states, i) && same(&names[i], header->value.ptr, header->value.len)) {
                pinned = true;
                pin = (uint32_t)i;
                break;
            }
        }
    }
    if (pinned) answer[count++] = pin;

    // The other healthy backends in ascending (score, rot), cut to what is left of MAX_ANSWER.
    // rot is distinct for every i, so the keys are distinct and keeping the smallest few in
    // order by insertion gives exactly the head of the full sort.
    if (n > 0) {
        uint64_t shift = request->sequence % n;
        uint64_t keys[MAX_ANSWER][2];
        size_t room = MAX_ANSWER - count, kept = 0;
        uint32_t best[MAX_ANSWER];
        for (size_t i = 0; i < n; i++) {
            if (!eligible(states, i) || (pinned && i == pin)) continue;
            uint64_t weight = weights[i];
            uint64_t latency = latencies[i];
            uint64_t score = latency * 1000 / (weight ? weight : 1);
            uint64_t rot = ((uint64_t)i + n - shift) % n;
            size_t at = kept;
            while (at > 0 && (keys[at - 1][0] > score || (keys[at - 1][0] == score && keys[at - 1][1] > rot))) {
                at--;
            }
            if (at >= room) continue;
            size_t last = kept < room ? kept : room - 1;
            for (size_t j = last; j > at; j--) {
                keys[j][0] = keys[j - 1][0];
                keys[j][1] = keys[j - 1][1];
                best[j] = best[j - 1];
            }
            keys[at][0] = score;
            keys[at][1] = rot;
            best[at] = (uint32_t)i;
            if (kept < room) kept++;
        }
        for (size_t j = 0; j < kept; j++) answer[count++] = best[j];
    }

    // The answer is heap-allocated (the post-return frees it); [] declines, with nothing to free.
    ret->len = count;
    ret->ptr = NULL;
    if (count) {
        ret->ptr = malloc(count * sizeof *ret->ptr);
        if (!ret->ptr) abort();
        memcpy(ret->ptr, answer, count * sizeof *ret->ptr);
    }

    exports_vane_balancer_policy_request_free(request);
    balancer_list_u64_free(states);
}

void exports_vane_balancer_policy_observe(exports_vane_balancer_policy_list_outcome_t *outcomes) {
    exports_vane_balancer_policy_list_outcome_free(outcomes);
}
