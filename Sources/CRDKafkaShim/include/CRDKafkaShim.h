#ifndef PAYMENTS_CRDKAFKA_SHIM_FUNCTIONS_H
#define PAYMENTS_CRDKAFKA_SHIM_FUNCTIONS_H
#include <stdint.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// The most arguments `payments_rdkafka_produce` passes to `rd_kafka_produceva`: topic,
/// partition, flags, key, value, headers, opaque.
#define PAYMENTS_RDKAFKA_PRODUCE_MAX_ARGUMENTS 7

/// Produces one record. `rd_kafka_producev` is variadic and cannot be called from Swift, so this
/// fixed-signature function builds the argument list. On success the headers are owned by
/// librdkafka; on failure they still belong to the caller. Defined in shim.c (not inline in a
/// header), so that sanitizers instrument it.
rd_kafka_resp_err_t payments_rdkafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *key, size_t key_len, const void *value, size_t value_len,
    rd_kafka_headers_t *headers, void *opaque);

/// Fills `vus` (room for `capacity` entries) with the arguments of one produce call and returns
/// how many it used, or 0 when they do not fit. Separate from the call so that tests can check
/// the list without a broker.
size_t payments_rdkafka_produce_arguments(
    rd_kafka_vu_t *vus, size_t capacity, const char *topic, int32_t partition,
    const void *key, size_t key_len, const void *value, size_t value_len,
    rd_kafka_headers_t *headers, void *opaque);

/// Injects `count` copies of `error` (at most 64) as the answers to the next requests of API
/// `api_key`.
void payments_rdkafka_mock_push_request_errors(
    rd_kafka_mock_cluster_t *cluster, int16_t api_key, size_t count, rd_kafka_resp_err_t error);
#endif
