/* src/journey/graph.c -- the journey as a graph: edges resolved by node id, every
 * node reachable from start, and no loop that could spin without waiting.
 *
 * Edges were collected while the nodes were read (jrn__edge_add); here each gets
 * its target's index. Then, with edges as adjacency lists in document order:
 *   - reachability: a breadth-first walk from `start`; a node it never reaches
 *     is an error (it is dead code a reviewer would otherwise trust);
 *   - busy loops: a depth-first walk over the nodes that do not wait (every kind
 *     but wait); a back edge there is a cycle in which a person could go round
 *     without time passing, so it is refused. Every wait breaks a cycle: a
 *     duration or a time of day lets time pass, and an event wait needs an
 *     outside event (its timeout, if any, lets time pass too). A wait on a
 *     segment is the exception: it goes on at once when the person is
 *     already there, so only its on_timeout edge breaks a cycle.
 *
 * Invariants:
 *  (1) After jrn__graph_check, every slot registered with jrn__edge_add holds a
 *      node index, or JRN_NONE when its target is missing (an error was given).
 *  (2) Reachability is checked only when every edge resolved: a misspelt edge
 *      would otherwise also make its intended target look unreachable, and the
 *      reader would get two errors for one typo.
 *  (3) Each busy cycle is reported once, at the edge that closes it (the place
 *      to put a wait), naming the nodes round the loop.
 */
#include "journey_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct graph {
    jrn__ctx *c;
    uint32_t *off;        /* node u's edges: eidx[off[u] .. off[u+1]) */
    uint32_t *eidx;       /* indexes into c->edges */
    uint8_t *color;       /* cycle search: 0 white, 1 on the stack, 2 done */
    uint8_t *reported;    /* node already named in a reported cycle */
    uint32_t *stack;
    uint32_t depth;
} graph;

static void resolve(jrn__ctx *c)
{
    jrn_doc *d = c->doc;
    const char **ids = jd_xcalloc(d->nnodes, sizeof *ids);
    for (uint32_t i = 0; i < d->nnodes; i++) ids[i] = d->nodes[i].id;
    for (size_t i = 0; i < c->nedges; i++) {
        const jrn__edge *e = &c->edges[i];
        const jrn_node *to = jd_map_get(c->ids, e->ref->text, strlen(e->ref->text));
        if (to) {
            *e->slot = to->index;
            continue;
        }
        c->missing_edges++;
        c->node = e->from == JRN_NONE ? "" : d->nodes[e->from].id;
        const char *s = jrn__suggest(e->ref->text, ids, d->nnodes);
        const char *what = e->from == JRN_NONE ? "start is a missing node" : "edge to missing node";
        if (s)
            jrn__diag_at(c, e->ref, "%s '%.64s' (did you mean '%s'?)", what, e->ref->text, s);
        else
            jrn__diag_at(c, e->ref, "%s '%.64s'", what, e->ref->text);
    }
    c->node = "";
    free(ids);
}

static void build_adjacency(graph *g)
{
    jrn__ctx *c = g->c;
    uint32_t n = c->doc->nnodes;
    g->off = jd_xcalloc(n + 2, sizeof *g->off);
    g->eidx = jd_xcalloc(c->nedges + 1, sizeof *g->eidx);
    for (size_t i = 0; i < c->nedges; i++)
        if (c->edges[i].from != JRN_NONE && *c->edges[i].slot != JRN_NONE) g->off[c->edges[i].from + 2]++;
    for (uint32_t u = 0; u < n; u++) g->off[u + 2] += g->off[u + 1];
    /* off[u + 1] is now where u's edges start; filling advances it to u's end. */
    for (size_t i = 0; i < c->nedges; i++)
        if (c->edges[i].from != JRN_NONE && *c->edges[i].slot != JRN_NONE) g->eidx[g->off[c->edges[i].from + 1]++] = (uint32_t)i;
}

static uint32_t target(const graph *g, uint32_t k) { return *g->c->edges[g->eidx[k]].slot; }

static void check_reachable(graph *g)
{
    jrn__ctx *c = g->c;
    jrn_doc *d = c->doc;
    uint8_t *seen = jd_xcalloc(d->nnodes, 1);
    uint32_t *queue = jd_xcalloc(d->nnodes, sizeof *queue);
    uint32_t head = 0, tail = 0;
    seen[d->start] = 1;
    queue[tail++] = d->start;
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t k = g->off[u]; k < g->off[u + 1]; k++) {
            uint32_t v = target(g, k);
            if (!seen[v]) {
                seen[v] = 1;
                queue[tail++] = v;
            }
        }
    }
    for (uint32_t i = 0; i < d->nnodes; i++) {
        if (seen[i]) continue;
        c->node = d->nodes[i].id;
        jrn__diag(c, d->nodes[i].line, d->nodes[i].col, "unreachable node: no path leads here from the start node '%s'",
                  d->nodes[d->start].id);
    }
    c->node = "";
    free(seen);
    free(queue);
}

/* A wait on a segment change goes on at once when the person is already
 * there (docs/journeys.md 5.1), so its `next` edge can be taken without time
 * passing: it breaks a cycle only through its on_timeout edge. */
static bool segment_wait(const jrn_node *n)
{
    bool enter;
    return n->kind == JRN_WAIT && n->u.wait.kind == JRN_WAIT_EVENT && jrn_segment_event_parse(n->u.wait.event, &enter);
}

static bool waits(const jrn_node *n)
{
    return n->kind > 0 && n->kind < JRN_KIND_COUNT_ && jrn__kinds[n->kind].breaks_cycle && !segment_wait(n);
}

/* Names the loop stack[from..depth) and back to its first node: "a -> b -> a". */
static void report_cycle(graph *g, uint32_t from, uint32_t k)
{
    jrn__ctx *c = g->c;
    jrn_doc *d = c->doc;
    for (uint32_t i = from; i < g->depth; i++)
        if (g->reported[g->stack[i]]) return;   /* (3): this loop was named already */
    jd_buf path;
    jd_buf_init(&path, 1u << 20);
    bool via_segment = false;
    for (uint32_t i = from; i < g->depth; i++) {
        g->reported[g->stack[i]] = 1;
        via_segment |= segment_wait(&d->nodes[g->stack[i]]);
        jd_buf_addf(&path, "%s -> ", d->nodes[g->stack[i]].id);
    }
    jd_buf_adds(&path, d->nodes[g->stack[from]].id);
    const char *p = path.data;
    char shortened[112];
    if (path.len > 100) {
        snprintf(shortened, sizeof shortened, "%.90s ...", p);
        p = shortened;
    }
    const jrn__edge *e = &c->edges[g->eidx[k]];
    c->node = d->nodes[e->from].id;
    if (via_segment)
        jrn__diag_at(c, e->ref, "cycle without a wait: %s (a segment wait goes on at once when already true; "
                                "put another wait in the loop)", p);
    else
        jrn__diag_at(c, e->ref, "cycle without a wait: %s (put a wait node in the loop)", p);
    c->node = "";
    jd_buf_release(&path);
}

static void dfs(graph *g, uint32_t u)
{
    const jrn_doc *d = g->c->doc;
    g->color[u] = 1;
    g->stack[g->depth++] = u;
    for (uint32_t k = g->off[u]; k < g->off[u + 1]; k++) {
        uint32_t v = target(g, k);
        if (waits(&d->nodes[v])) continue;
        if (g->c->edges[g->eidx[k]].slot == &d->nodes[u].u.wait.timeout_next && segment_wait(&d->nodes[u])) continue;
        if (g->color[v] == 1) {
            uint32_t from = g->depth;
            while (from > 0 && g->stack[from - 1] != v) from--;
            report_cycle(g, from - 1, k);
        } else if (g->color[v] == 0) {
            dfs(g, v);   /* depth <= JRN_MAX_NODES */
        }
    }
    g->depth--;
    g->color[u] = 2;
}

void jrn__graph_check(jrn__ctx *c)
{
    jrn_doc *d = c->doc;
    if (!d->nnodes) return;
    resolve(c);
    graph g = { .c = c };
    build_adjacency(&g);
    if (c->missing_edges == 0 && d->start != JRN_NONE) check_reachable(&g);
    g.color = jd_xcalloc(d->nnodes, 1);
    g.reported = jd_xcalloc(d->nnodes, 1);
    g.stack = jd_xcalloc(d->nnodes, sizeof *g.stack);
    for (uint32_t u = 0; u < d->nnodes; u++)
        if (g.color[u] == 0 && !waits(&d->nodes[u])) dfs(&g, u);
    free(g.off);
    free(g.eidx);
    free(g.color);
    free(g.reported);
    free(g.stack);
}
