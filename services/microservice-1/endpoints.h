/* endpoints.h - routing and answers of the HTTP endpoints. */
#ifndef MICROSERVICE1_ENDPOINTS_H
#define MICROSERVICE1_ENDPOINTS_H

#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

/* Builds the constant responses; 0 or -1 (out of memory). */
int endpoints_init(const struct config *cfg);
/* Frees them; only after MHD_stop_daemon(). */
void endpoints_free(void);

/* MHD_AccessHandlerCallback */
enum MHD_Result endpoints_handle(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *http_version,
                                 const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);

/* MHD_RequestCompletedCallback (MHD_OPTION_NOTIFY_COMPLETED) */
void endpoints_completed(void *cls, struct MHD_Connection *conn,
                         void **req_cls,
                         enum MHD_RequestTerminationCode toe);

#endif
