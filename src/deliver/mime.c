/* src/deliver/mime.c -- an email as bytes on the wire (RFC 5322, 2045-2047).
 *
 * Invariants:
 *  (1) Every line ends in CRLF and is at most 78 characters in the headers
 *      (folded) and 76 in the bodies (quoted-printable soft breaks), far
 *      under SMTP's 998; a line starting with "." is left to curl, which
 *      dot-stuffs the DATA (CURLOPT_UPLOAD on smtp://).
 *  (2) No caller text reaches a header unchecked: CR, LF and other control
 *      bytes are refused (header injection), non-ASCII goes through RFC 2047.
 *  (3) The boundary begins "=_", which quoted-printable output never
 *      contains (a literal "=" is always "=3D"), so it cannot occur in a part.
 *  (4) The bytes depend on the message, the channel and now_us (Date) only:
 *      the Message-ID and the boundary derive from the intent id, so every
 *      retry of an intent carries the same Message-ID.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "deliver_int.h"

bool dlv__has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 && *p != '\t') return true;
        else if (*p == 0x7f) return true;
    return false;
}

static bool all_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80) return false;
    return true;
}

int dlv__addr_spec(const char *s, char *out, size_t n)
{
    const char *a = s, *e = s + strlen(s);
    const char *lt = strrchr(s, '<');
    if (lt) {
        const char *gt = strchr(lt, '>');
        if (!gt || gt[1] != '\0') return -1;
        a = lt + 1;
        e = gt;
    }
    while (a < e && (*a == ' ' || *a == '\t')) a++;
    while (e > a && (e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t len = (size_t)(e - a);
    if (len == 0 || len >= n) return -1;
    const char *at = memchr(a, '@', len);
    if (!at || at == a || at == e - 1) return -1;
    for (const char *p = a; p < e; p++)
        if (*p == '<' || *p == '>' || *p == ' ' || *p == ',' || (unsigned char)*p < 0x21) return -1;
    memcpy(out, a, len);
    out[len] = '\0';
    return 0;
}

void dlv__rfc5322_date(uint64_t us, char out[40])
{
    static const char *const wd[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
    static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    int64_t s = (int64_t)(us / JD_SEC), days = s / 86400, rem = s % 86400;
    int64_t y;
    unsigned m, d;
    jd_civil_from_days(days, &y, &m, &d);
    snprintf(out, 40, "%s, %02u %s %04" PRId64 " %02d:%02d:%02d +0000", wd[days % 7], d, mo[m - 1], y,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* ---- RFC 2047 ------------------------------------------------------------ */

static int add_b64(jd_buf *out, const unsigned char *p, size_t n)
{
    unsigned char enc[128];                      /* n <= 48 -> 64 chars */
    int k = EVP_EncodeBlock(enc, p, (int)n);
    return jd_buf_add(out, enc, (size_t)k);
}

/* Length of the UTF-8 sequence starting at p (1 for stray bytes). */
static size_t u8len(const unsigned char *p, size_t left)
{
    size_t k = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
    return k > left ? left : k;
}

int dlv__header_words(const char *v, size_t name_len, jd_buf *out)
{
    size_t n = strlen(v);
    if (all_ascii(v) && !strstr(v, "=?") && name_len + n <= 78) return jd_buf_add(out, v, n);
    if (all_ascii(v) && !strstr(v, "=?")) {
        /* fold long ASCII at spaces */
        size_t col = name_len, i = 0;
        while (i < n) {
            size_t j = i;
            while (j < n && v[j] == ' ') j++;
            while (j < n && v[j] != ' ') j++;
            if (col + (j - i) > 78 && i > 0) {
                if (jd_buf_add(out, "\r\n", 2)) return JD_ELIMIT;
                col = 0;
                if (v[i] != ' ' && jd_buf_add(out, " ", 1)) return JD_ELIMIT;
            }
            if (jd_buf_add(out, v + i, j - i)) return JD_ELIMIT;
            col += j - i;
            i = j;
        }
        return JD_OK;
    }
    /* Encoded words, one a line, each line at most 76 characters (RFC 2047
     * 2), never splitting a UTF-8 sequence (RFC 2047 5: each word must
     * decode on its own). The first shares its line with the header name. */
    const unsigned char *p = (const unsigned char *)v;
    size_t i = 0;
    bool first = true;
    while (i < n) {
        size_t lead = first ? name_len : 1, budget = lead + 12 + 8 <= 76 ? 76 - lead - 12 : 8;
        size_t max_raw = budget / 4 * 3, j = i;
        while (j < n) {
            size_t k = u8len(p + j, n - j);
            if (j + k - i > max_raw && j > i) break;
            j += k;
        }
        if (!first && jd_buf_add(out, "\r\n ", 3)) return JD_ELIMIT;
        if (jd_buf_add(out, "=?UTF-8?B?", 10) || add_b64(out, p + i, j - i) || jd_buf_add(out, "?=", 2))
            return JD_ELIMIT;
        first = false;
        i = j;
    }
    return JD_OK;
}

/* ---- quoted-printable ---------------------------------------------------- */

int dlv__qp_encode(const char *s, size_t n, jd_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    char line[80];
    size_t col = 0;
    for (size_t i = 0; i <= n; i++) {
        bool eol = i == n || s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n');
        if (eol) {
            /* trailing white space is encoded (RFC 2045 6.7 (3)) */
            if (col > 0 && (line[col - 1] == ' ' || line[col - 1] == '\t')) {
                unsigned char c = (unsigned char)line[col - 1];
                col--;
                if (col + 3 > 76) {
                    if (jd_buf_add(out, line, col) || jd_buf_add(out, "=\r\n", 3)) return JD_ELIMIT;
                    col = 0;
                }
                line[col++] = '=';
                line[col++] = hex[c >> 4];
                line[col++] = hex[c & 15];
            }
            if (jd_buf_add(out, line, col)) return JD_ELIMIT;
            col = 0;
            if (i == n) break;
            if (jd_buf_add(out, "\r\n", 2)) return JD_ELIMIT;
            if (s[i] == '\r') i++;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        char enc[3];
        size_t k;
        if ((c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t') {
            enc[0] = (char)c;
            k = 1;
        } else {
            enc[0] = '=';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            k = 3;
        }
        if (col + k > 75) {   /* 75 + the soft break's "=" = 76 */
            if (jd_buf_add(out, line, col) || jd_buf_add(out, "=\r\n", 3)) return JD_ELIMIT;
            col = 0;
        }
        memcpy(line + col, enc, k);
        col += k;
    }
    return JD_OK;
}

/* ---- the message --------------------------------------------------------- */

static int header(jd_buf *out, const char *name, const char *value)
{
    size_t nl = strlen(name) + 2;
    if (jd_buf_adds(out, name) || jd_buf_add(out, ": ", 2) || dlv__header_words(value, nl, out) ||
        jd_buf_add(out, "\r\n", 2))
        return JD_ELIMIT;
    return JD_OK;
}

/* From / Reply-To: "Name <a@b>" keeps the address as is and encodes a
 * non-ASCII display name; a bare address is written as is. */
static int address_header(jd_buf *out, const char *name, const char *v)
{
    const char *lt = strrchr(v, '<');
    if (!lt || all_ascii(v)) return header(out, name, v);
    size_t dn = (size_t)(lt - v);
    while (dn > 0 && v[dn - 1] == ' ') dn--;
    const char *d = v;
    if (dn >= 2 && d[0] == '"' && d[dn - 1] == '"') { d++; dn -= 2; }
    char *disp = jd_xstrndup(d, dn);
    int rc = JD_ELIMIT;
    if (jd_buf_adds(out, name) || jd_buf_add(out, ": ", 2)) goto out;
    if (dlv__header_words(disp, strlen(name) + 2, out)) goto out;
    if (jd_buf_add(out, "\r\n ", 3) || jd_buf_adds(out, lt) || jd_buf_add(out, "\r\n", 2)) goto out;
    rc = JD_OK;
out:
    free(disp);
    return rc;
}

static int part(jd_buf *out, const char *boundary, const char *type, const char *body)
{
    if (boundary && jd_buf_addf(out, "--%s\r\n", boundary)) return JD_ELIMIT;
    if (jd_buf_addf(out, "Content-Type: %s; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                    type))
        return JD_ELIMIT;
    if (dlv__qp_encode(body, strlen(body), out) || jd_buf_add(out, "\r\n", 2)) return JD_ELIMIT;
    return JD_OK;
}

int dlv__email_build(const dlv__chan *c, const dlv_msg *m, uint64_t now_us, jd_buf *out, char *why, size_t n)
{
    const char *from = m->email.from ? m->email.from : c->cfg.from;
    char from_addr[256], date[40], mid[320], boundary[48];
    if (dlv__addr_spec(from, from_addr, sizeof from_addr) != 0) {
        snprintf(why, n, "bad From address");
        return -1;
    }
    const char *domain = c->cfg.message_id_domain ? c->cfg.message_id_domain : strchr(from_addr, '@') + 1;
    dlv__rfc5322_date(now_us, date);
    snprintf(mid, sizeof mid, "<%016" PRIx64 "@%s>", m->intent_id, domain);
    snprintf(boundary, sizeof boundary, "=_jd_%016" PRIx64, m->intent_id);

    bool ok = header(out, "Date", date) == 0 && address_header(out, "From", from) == 0 &&
              header(out, "To", m->to) == 0 &&
              (!m->email.reply_to || address_header(out, "Reply-To", m->email.reply_to) == 0) &&
              header(out, "Subject", m->email.subject ? m->email.subject : "") == 0 &&
              header(out, "Message-ID", mid) == 0 && header(out, "MIME-Version", "1.0") == 0;
    if (ok && (m->email.unsubscribe_url || m->email.unsubscribe_mailto)) {
        /* RFC 2369 + RFC 8058: the https link first; One-Click only with one */
        ok = jd_buf_adds(out, "List-Unsubscribe: ") == 0;
        if (ok && m->email.unsubscribe_url) ok = jd_buf_addf(out, "<%s>", m->email.unsubscribe_url) == 0;
        if (ok && m->email.unsubscribe_url && m->email.unsubscribe_mailto) ok = jd_buf_adds(out, ",\r\n ") == 0;
        if (ok && m->email.unsubscribe_mailto) ok = jd_buf_addf(out, "<%s>", m->email.unsubscribe_mailto) == 0;
        if (ok) ok = jd_buf_add(out, "\r\n", 2) == 0;
        if (ok && m->email.unsubscribe_url)
            ok = header(out, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click") == 0;
    }
    if (ok && m->email.text && m->email.html) {
        ok = jd_buf_addf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary) == 0 &&
             jd_buf_adds(out, "This is a multi-part message in MIME format.\r\n\r\n") == 0 &&
             part(out, boundary, "text/plain", m->email.text) == 0 &&
             part(out, boundary, "text/html", m->email.html) == 0 &&
             jd_buf_addf(out, "--%s--\r\n", boundary) == 0;
    } else if (ok) {
        ok = part(out, NULL, m->email.text ? "text/plain" : "text/html", m->email.text ? m->email.text : m->email.html) == 0;
    }
    if (!ok) {
        snprintf(why, n, "message exceeds %zu bytes", out->max);
        return -1;
    }
    return 0;
}
