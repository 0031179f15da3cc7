/* fuzz/journey_state.c -- libFuzzer driver for jrn_host_decode (a
 * partition's journey state in a snapshot) and jrn_reg_decode (the registry).
 *
 * The registry is fixed (one journey, two versions: waits on an event with a
 * timeout, a split, a send; one segment that time flips), built once. Raw bytes go to the decoder of a
 * fresh host. It must never crash, leak or read out of bounds; when it
 * accepts the bytes, time is advanced a year so every restored wait fires
 * (the state machine must cope with any accepted state), and encoding the
 * host and decoding that again must succeed with the same instance count.
 * Every input is also offered to the registry decoder as JSON text.
 */
#include "journeyd/runtime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char DOC[] =
    "id: cart\n"
    "entry: { event: Cart Updated }\n"
    "reentry: always\n"
    "exits:\n"
    "  - { event: Ticket Opened, action: pause, resume_on: Ticket Closed }\n"
    "nodes:\n"
    "  wait_order:\n"
    "    wait: { event: Order Completed, timeout: 1h }\n"
    "    next: done\n"
    "    on_timeout: ab\n"
    "  ab:\n"
    "    split:\n"
    "      - { variant: a, weight: 50, next: remind }\n"
    "      - { variant: control, weight: 50, control: true }\n"
    "  remind:\n"
    "    send: { channel: email, template: cart_reminder }\n"
    "  done:\n"
    "    exit: ordered\n";

static jrn_reg *reg;

static void setup(void)
{
    if (reg) return;
    reg = jrn_reg_create(NULL);
    const jrn_journey *j;
    jrn_status was;
    jd_err err;
    jrn_ctl c = { JRN_OP_PUBLISH, "cart", DOC, sizeof DOC - 1, "fuzz" };
    if (jrn_reg_apply(reg, &c, 1, &j, &was, &err) != JD_OK) abort();
    if (jrn_reg_apply(reg, &c, 2, &j, &was, &err) != JD_OK) abort();   /* version 2 */
    static const char seg[] = "id: idle\nwhen: days_since(timestamp(profile.last_seen)) >= 3\n";
    jrn_ctl s = { JRN_OP_SEGMENT, "idle", seg, sizeof seg - 1, "fuzz" };
    if (jrn_reg_apply(reg, &s, 3, &j, &was, &err) != JD_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    jd_err err;
    jrn_reg *r2 = jrn_reg_create(NULL);
    jrn_reg_decode(r2, (const char *)data, size, &err);
    jrn_reg_destroy(r2);

    prof_store *ps = prof_store_create(NULL);
    jrn_host *h = jrn_host_create(reg, ps, 0, NULL);
    if (jrn_host_decode(h, data, size, &err) == JD_OK) {
        jd_buf b;
        jd_buf_init(&b, SIZE_MAX);
        if (jrn_host_encode(h, &b) != JD_OK) abort();
        jrn_host *h2 = jrn_host_create(reg, ps, 0, NULL);
        if (jrn_host_decode(h2, b.data, b.len, &err) != JD_OK) abort();
        if (jrn_host_instances(h2) != jrn_host_instances(h)) abort();
        jrn_host_destroy(h2);
        jd_buf_release(&b);
        jrn_host_advance(h, jrn_host_now(h) + (int64_t)(365 * JD_DAY), 1);
    }
    jrn_host_destroy(h);
    prof_store_destroy(ps);
    return 0;
}
