/* src/deliver/deliver_int.h -- private to src/deliver/.
 *
 *   dlv.c       the object, dlv_submit, the delivery thread: admission,
 *               waiting (heap), rate limits, concurrency, retries, shutdown
 *   channels.c  the channel table: config checks, message checks, building a
 *               curl transfer per kind, classifying its outcome
 *   mime.c      the email: RFC 5322 headers, RFC 2047 words, quoted-printable,
 *               multipart/alternative
 *   sign.c      the webhook signature scheme (public: track.c checks receipts with it)
 */
#ifndef JOURNEYD_DELIVER_INT_H
#define JOURNEYD_DELIVER_INT_H

#include <curl/curl.h>

#include "journeyd/deliver.h"

#define DLV__RESP_MAX   (16u * 1024)  /* bytes of a provider's reply kept (ids, error excerpts) */
#define DLV__EXCERPT    200           /* bytes of a reply body quoted in an error */
#define DLV__ERR_MAX    320

/* A channel as the delivery thread holds it (config copied at create). */
typedef struct dlv__chan {
    dlv_channel_cfg cfg;            /* strings owned (copied) */
    char *api_url;                  /* sms/push: the full endpoint; else cfg.url */
    char *auth_header;              /* push: "Authorization: Bearer ..." */
    char  from_addr[256];           /* email: the address inside cfg.from */
    dlv_signer *signer;             /* webhook: the secret's keyed states (sign.c) */
    /* delivery thread only */
    struct dlv__job *ready_head, *ready_tail;   /* due, waiting for a token or a slot */
    uint32_t in_flight;
    struct dlv__xfer *free_x;       /* this channel's idle transfers (same options every time) */
    double   tokens;
    uint64_t tokens_ns;             /* monotonic time of the last refill */
    /* any thread (relaxed atomics) */
    uint64_t unfinished;            /* accepted, not yet resulted or handed back */
    uint64_t n_accepted, n_sent, n_failed, n_dead, n_retries, n_refused;
} dlv__chan;

/* One accepted message on its way (allocated by dlv_submit). */
typedef struct dlv__job {
    jd_qnode node;                  /* first: the submit queue's link */
    dlv_msg *msg;
    dlv__chan *ch;                  /* NULL: unknown channel (fails at admission) */
    struct dlv__job *next;          /* ready FIFO */
    size_t   heap_i;                /* position in the waiting heap */
    uint64_t due_ns;                /* monotonic: when it may be tried */
    uint64_t accepted_ns, accepted_us;
    uint64_t attempt_ns;            /* monotonic start of the current / last attempt */
    uint64_t last_attempt_us;
    int      status;
    char     error[DLV__ERR_MAX];
    char     provider_id[128];
} dlv__job;

/* One transfer: an easy handle reused across attempts (connections live in
 * the multi handle's cache). */
typedef struct dlv__xfer {
    CURL *easy;
    dlv__job *job;
    struct curl_slist *headers, *rcpt;
    jd_buf body;                    /* what is sent */
    size_t sent;                    /* SMTP upload position */
    jd_buf resp;                    /* reply body, at most DLV__RESP_MAX */
    char   errbuf[CURL_ERROR_SIZE];
    char   retry_after[64];         /* the header's value, "" if none */
    char   smtp_reply[256];         /* last SMTP reply line */
    char   smtp_queued[128];        /* from "250 ... queued as X" */
    struct dlv__xfer *next_free;
} dlv__xfer;

/* How an attempt ended. */
enum { DLV__OK, DLV__TRANSIENT, DLV__PERMANENT };

/* ---- channels.c ---------------------------------------------------------- */
/* Checks cfg and fills c (copies). JD_EINVAL names "channels.NAME.field". */
int  dlv__chan_init(dlv__chan *c, const dlv_channel_cfg *cfg, jd_err *err);
void dlv__chan_release(dlv__chan *c);
/* Checks m for c before any attempt: 0, or -1 with why filled. */
int  dlv__msg_check(const dlv__chan *c, const dlv_msg *m, char *why, size_t n);
/* Sets up x->easy for one attempt of x->job at wall time now_us. JD_OK or
 * JD_EINVAL (why filled: the message cannot be sent, permanently). */
int  dlv__xfer_prepare(dlv__xfer *x, const char *user_agent, uint64_t now_us, char *why, size_t n);
/* After the transfer: DLV__OK / TRANSIENT / PERMANENT; fills job->status,
 * job->error (or job->provider_id) and *retry_after_us (0: none) from the
 * reply; now_us parses Retry-After dates. */
int  dlv__xfer_classify(dlv__xfer *x, CURLcode cc, uint64_t now_us, uint64_t *retry_after_us);
/* Parses a Retry-After value (seconds or an HTTP date) into a delay from
 * now_us; false if it is neither. Pure. */
bool dlv__retry_after_parse(const char *v, uint64_t now_us, uint64_t *delay_us);

/* ---- mime.c -------------------------------------------------------------- */
/* The address inside "Name <a@b.c>" or "a@b.c": 0, or -1 if malformed. */
int  dlv__addr_spec(const char *s, char *out, size_t n);
/* The whole RFC 5322 message with CRLF line endings (curl dot-stuffs it).
 * now_us is the Date header. 0, or -1 with why filled. */
int  dlv__email_build(const dlv__chan *c, const dlv_msg *m, uint64_t now_us, jd_buf *out,
                      char *why, size_t n);
/* Quoted-printable (RFC 2045 6.7) of UTF-8 text, line ends made CRLF. */
int  dlv__qp_encode(const char *s, size_t n, jd_buf *out);
/* An unstructured header value: as is when printable ASCII, else RFC 2047
 * B-encoded words folded under 78 columns. name_len: the header name's length
 * plus ": " (for the first line's width). */
int  dlv__header_words(const char *v, size_t name_len, jd_buf *out);
/* RFC 5322 date: "Tue, 03 Mar 2026 08:05:09 +0000". */
void dlv__rfc5322_date(uint64_t us, char out[40]);
/* True if s has a CR, LF or NUL-free control byte that would break a header. */
bool dlv__has_ctl(const char *s);

#endif
