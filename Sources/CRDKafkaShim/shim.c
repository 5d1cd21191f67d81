#include "CRDKafkaShim.h"
#include <assert.h>

size_t payments_rdkafka_produce_arguments(
    rd_kafka_vu_t *vus, size_t capacity, const char *topic, int32_t partition,
    const void *key, size_t key_len, const void *value, size_t value_len,
    rd_kafka_headers_t *headers, void *opaque) {
    size_t needed = 5 + (key != NULL ? 1 : 0) + (headers != NULL ? 1 : 0);
    if (needed > capacity) return 0;
    size_t count = 0;
    vus[count].vtype = RD_KAFKA_VTYPE_TOPIC; vus[count].u.cstr = topic; count++;
    vus[count].vtype = RD_KAFKA_VTYPE_PARTITION; vus[count].u.i32 = partition; count++;
    vus[count].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[count].u.i = RD_KAFKA_MSG_F_COPY; count++;
    if (key != NULL) {
        vus[count].vtype = RD_KAFKA_VTYPE_KEY;
        vus[count].u.mem.ptr = (void *)key;
        vus[count].u.mem.size = key_len;
        count++;
    }
    vus[count].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[count].u.mem.ptr = (void *)value;
    vus[count].u.mem.size = value_len;
    count++;
    if (headers != NULL) {
        vus[count].vtype = RD_KAFKA_VTYPE_HEADERS; vus[count].u.headers = headers; count++;
    }
    vus[count].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[count].u.ptr = opaque; count++;
    assert(count == needed);
    return count;
}

rd_kafka_resp_err_t payments_rdkafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *key, size_t key_len, const void *value, size_t value_len,
    rd_kafka_headers_t *headers, void *opaque) {
    rd_kafka_vu_t vus[PAYMENTS_RDKAFKA_PRODUCE_MAX_ARGUMENTS];
    size_t count = payments_rdkafka_produce_arguments(
        vus, PAYMENTS_RDKAFKA_PRODUCE_MAX_ARGUMENTS, topic, partition, key, key_len, value, value_len,
        headers, opaque);
    if (count == 0) return RD_KAFKA_RESP_ERR__INVALID_ARG;
    rd_kafka_error_t *error = rd_kafka_produceva(rk, vus, count);
    if (error == NULL) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    return code;
}

void payments_rdkafka_mock_push_request_errors(
    rd_kafka_mock_cluster_t *cluster, int16_t api_key, size_t count, rd_kafka_resp_err_t error) {
    rd_kafka_resp_err_t errors[64];
    if (count > 64) count = 64;
    for (size_t i = 0; i < count; i++) errors[i] = error;
    rd_kafka_mock_push_request_errors_array(cluster, api_key, count, errors);
}
