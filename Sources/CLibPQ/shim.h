#ifndef PAYMENTS_CLIBPQ_SHIM_H
#define PAYMENTS_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
