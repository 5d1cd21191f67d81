#ifndef PAYMENTS_CRDKAFKA_SHIM_H
#define PAYMENTS_CRDKAFKA_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// Produces one record. `rd_kafka_producev` is variadic and cannot be called from Swift, so this
/// fixed-signature shim builds the argument list. On success the headers are owned by librdkafka;
/// on failure they still belong to the caller.
static inline rd_kafka_resp_err_t payments_rdkafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *key, size_t key_len, const void *value, size_t value_len,
    rd_kafka_headers_t *headers, void *opaque) {
    rd_kafka_vu_t vus[6];
    size_t count = 0;
    vus[count].vtype = RD_KAFKA_VTYPE_TOPIC; vus[count].u.cstr = topic; count++;
    vus[count].vtype = RD_KAFKA_VTYPE_PARTITION; vus[count].u.i32 = partition; count++;
    vus[count].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[count].u.i = RD_KAFKA_MSG_F_COPY; count++;
    if (key != NULL) {
        vus[count].vtype = RD_KAFKA_VTYPE_KEY; vus[count].u.mem.ptr = (void *)key; vus[count].u.mem.size = key_len; count++;
    }
    vus[count].vtype = RD_KAFKA_VTYPE_VALUE; vus[count].u.mem.ptr = (void *)value; vus[count].u.mem.size = value_len; count++;
    if (headers != NULL) {
        vus[count].vtype = RD_KAFKA_VTYPE_HEADERS; vus[count].u.headers = headers; count++;
    }
    vus[count].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[count].u.ptr = opaque; count++;
    rd_kafka_error_t *error = rd_kafka_produceva(rk, vus, count);
    if (error == NULL) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    return code;
}

/// Injects `count` copies of `error` as the answers to the next requests of API `api_key`.
static inline void payments_rdkafka_mock_push_request_errors(
    rd_kafka_mock_cluster_t *cluster, int16_t api_key, size_t count, rd_kafka_resp_err_t error) {
    rd_kafka_resp_err_t errors[64];
    if (count > 64) count = 64;
    for (size_t i = 0; i < count; i++) errors[i] = error;
    rd_kafka_mock_push_request_errors_array(cluster, api_key, count, errors);
}
#endif
