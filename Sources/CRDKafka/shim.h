#ifndef PAYMENTS_CRDKAFKA_SHIM_H
#define PAYMENTS_CRDKAFKA_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

// The shim functions are in the CRDKafkaShim target (C compiled with the package's flags and
// sanitizers; a static inline function here would not be instrumented).
#endif
