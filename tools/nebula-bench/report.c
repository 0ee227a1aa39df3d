/*
 * report.c — merging worker reports and printing the JSON summary.
 *
 * The JSON is written by hand: numbers, and a few strings (escaped).
 */
#include "report.h"

#include <inttypes.h>

void step_merge(step_report *into, const step_report *from) {
    into->senders += from->senders;
    into->sent += from->sent;
    into->sent_warmup += from->sent_warmup;
    into->delivered += from->delivered;
    into->stale += from->stale;
    into->foreign += from->foreign;
    into->other += from->other;
    into->dropped += from->dropped;
    into->skipped += from->skipped;
    into->bytes_in += from->bytes_in;
    into->bytes_out += from->bytes_out;
    hist_merge(&into->latency, &from->latency);
    hist_merge(&into->at_socket, &from->at_socket);
    hist_merge(&into->lag, &from->lag);
}

double step_delivered_per_s(const step_result *s) {
    return s->window_s > 0 ? (double)s->agg.delivered / s->window_s : 0;
}

int64_t step_lost(const step_result *s) {
    return (int64_t)s->expected - (int64_t)s->agg.delivered;
}

static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

static void latency_json(FILE *out, const char *name, const hist *h) {
    fprintf(out,
            "\"%s\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p99\": %.3f, \"p999\": %.3f, "
            "\"max\": %.3f, \"mean\": %.3f}",
            name, h->count, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.99)),
            ms(hist_quantile(h, 0.999)), ms(h->count ? h->max : 0),
            h->count ? (double)h->sum / (double)h->count / 1e6 : 0.0);
}

static void messages_json(FILE *out, uint64_t sent, uint64_t expected, uint64_t delivered,
                          double window_s) {
    int64_t lost = (int64_t)expected - (int64_t)delivered;
    fprintf(out,
            "\"sent\": %" PRIu64 ", \"expected\": %" PRIu64 ", \"delivered\": %" PRIu64
            ", \"lost\": %" PRId64 ", \"loss_pct\": %.4f, \"sent_per_s\": %.1f"
            ", \"delivered_per_s\": %.1f",
            sent, expected, delivered, lost,
            expected ? 100.0 * (double)lost / (double)expected : 0.0,
            window_s > 0 ? (double)sent / window_s : 0.0,
            window_s > 0 ? (double)delivered / window_s : 0.0);
}

static void rss_json(FILE *out, const char *name, long kb) {
    if (kb < 0)
        fprintf(out, "\"%s\": null", name);
    else
        fprintf(out, "\"%s\": %ld", name, kb);
}

void report_print(FILE *out, const bench_params *p, const run_result *r) {
    fprintf(out, "{\n  \"tool\": \"nebula-bench\",\n  \"scenario\": \"%s\",\n", p->scen_name);
    fprintf(out, "  \"status\": \"%s\",\n", r->status);
    if (r->error[0]) {
        fprintf(out, "  \"error\": ");
        json_str(out, r->error);
        fprintf(out, ",\n");
    }

    fprintf(out,
            "  \"params\": {\"host\": \"%s\", \"port\": %u, \"connections\": %ld, "
            "\"room_size\": %ld, \"rooms\": %ld, \"senders\": %ld, ",
            p->targets[0].host, (unsigned)p->targets[0].port, p->connections, p->room_size,
            p->rooms, p->senders);
    if (p->n_targets > 1) {
        fprintf(out, "\"targets\": [");
        for (int i = 0; i < p->n_targets; i++)
            fprintf(out, "%s\"%s:%u\"", i ? ", " : "", p->targets[i].host,
                    (unsigned)p->targets[i].port);
        fprintf(out, "], \"spread\": \"%s\", ", p->spread == SPREAD_ROOM ? "room" : "connection");
    }
    if (p->scen != SC_S1) {
        if (p->auto_rates) {
            fprintf(out, "\"rates\": \"auto\", ");
        } else {
            fprintf(out, "\"rates\": [");
            for (int i = 0; i < p->n_rates; i++)
                fprintf(out, "%s%g", i ? ", " : "", p->rates[i]);
            fprintf(out, "], ");
        }
        fprintf(out, "\"rates_unit\": \"%s\", ",
                p->scen == SC_S3 ? "msg/s, whole room" : "msg/s per connection");
    }
    fprintf(out,
            "\"duration_s\": %g, \"warmup_s\": %g, \"drain_s\": %g, \"settle_s\": %g, "
            "\"content_bytes\": %ld, \"codec\": \"%s\", \"processes\": %d, \"src_base\": ",
            p->duration, p->warmup, p->drain, p->settle, p->content_bytes,
            p->codec == CODEC_PROTO   ? "proto"
            : p->codec == CODEC_MIXED ? "mixed"
                                      : "json",
            p->processes);
    if (p->src_bind) {
        char a[16];
        uint32_t b = ntohl(p->src_base.s_addr);
        snprintf(a, sizeof a, "%u.%u.%u.%u", b >> 24, (b >> 16) & 255, (b >> 8) & 255, b & 255);
        fprintf(out, "\"%s\"", a);
    } else {
        fprintf(out, "null");
    }
    fprintf(out,
            ", \"connect_rate\": %g, \"connect_timeout_s\": %g, \"inflight\": %d, "
            "\"retries\": %d, \"server_pid\": ",
            p->connect_rate, p->connect_timeout, p->inflight, p->retries);
    if (p->n_server_pids == 1) {
        fprintf(out, "%ld", p->server_pids[0]);
    } else if (p->n_server_pids > 1) {
        fprintf(out, "[");
        for (int i = 0; i < p->n_server_pids; i++)
            fprintf(out, "%s%ld", i ? ", " : "", p->server_pids[i]);
        fprintf(out, "]");
    } else {
        fprintf(out, "null");
    }
    fprintf(out, ", \"room_prefix\": ");
    json_str(out, p->room_prefix);
    fprintf(out, "},\n");

    const connect_report *c = &r->conn;
    fprintf(out,
            "  \"connections\": {\"target\": %ld, \"ok\": %" PRIu64 ", \"failed\": %" PRIu64
            ", \"attempt_failures\": %" PRIu64 ", \"dropped\": %" PRIu64
            ", \"ramp_s\": %.3f, \"connect_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}},\n",
            p->connections, c->ok, c->failed, c->attempt_failures, r->dropped, r->ramp_s,
            ms(hist_quantile(&c->connect, 0.5)), ms(hist_quantile(&c->connect, 0.99)),
            ms(c->connect.count ? c->connect.max : 0));

    /* the whole run: every step added up */
    uint64_t sent = 0, expected = 0, delivered = 0;
    double window = 0;
    hist all;
    hist_reset(&all);
    for (int i = 0; i < r->n_steps; i++) {
        const step_result *s = &r->steps[i];
        sent += s->agg.sent;
        expected += s->expected;
        delivered += s->agg.delivered;
        window += s->window_s;
        hist_merge(&all, &s->agg.latency);
    }
    fprintf(out, "  \"messages\": {");
    messages_json(out, sent, expected, delivered, window);
    fprintf(out, "},\n  ");
    latency_json(out, "latency_ms", &all);
    fprintf(out, ",\n");

    fprintf(out, "  \"steps\": [");
    for (int i = 0; i < r->n_steps; i++) {
        const step_result *s = &r->steps[i];
        const step_report *a = &s->agg;
        fprintf(out,
                "%s\n    {\"step\": %d, \"rate_per_sender\": %g, \"rate_total\": %.3f, "
                "\"senders\": %" PRIu64 ", \"members\": %" PRIu64
                ", \"expected_per_s\": %.1f,\n     ",
                i ? "," : "", i + 1, s->rate_per_sender, s->rate_per_sender * (double)a->senders,
                a->senders, s->members, s->window_s > 0 ? (double)s->expected / s->window_s : 0.0);
        messages_json(out, a->sent, s->expected, a->delivered, s->window_s);
        fprintf(out, ",\n     ");
        latency_json(out, "latency_ms", &a->latency);
        fprintf(out, ",\n     ");
        latency_json(out, "at_socket_ms", &a->at_socket);
        fprintf(out, ",\n     ");
        latency_json(out, "send_lag_ms", &a->lag);
        fprintf(out,
                ",\n     \"sent_outside_window\": %" PRIu64 ", \"skipped\": %" PRIu64
                ", \"dropped\": %" PRIu64 ", \"stale\": %" PRIu64 ", \"foreign\": %" PRIu64
                ", \"other_frames\": %" PRIu64 ", \"bytes_in\": %" PRIu64
                ", \"bytes_out\": %" PRIu64 "}",
                a->sent_warmup, a->skipped, a->dropped, a->stale, a->foreign, a->other, a->bytes_in,
                a->bytes_out);
    }
    fprintf(out, "%s],\n", r->n_steps ? "\n  " : "");
    if (r->stopped_by)
        fprintf(out, "  \"stopped_by\": \"%s\",\n", r->stopped_by);
    if (p->scen == SC_S3) {
        if (r->best_step >= 0) {
            const step_result *b = &r->steps[r->best_step];
            fprintf(out,
                    "  \"best\": {\"step\": %d, \"delivered_per_s\": %.1f, \"p99_ms\": %.3f, "
                    "\"p99_limit_ms\": %g},\n",
                    r->best_step + 1, step_delivered_per_s(b),
                    ms(hist_quantile(&b->agg.latency, 0.99)), p->p99_limit_ms);
        } else {
            fprintf(out, "  \"best\": null,\n");
        }
    }

    fprintf(out, "  \"server_rss_kb\": ");
    if (p->n_server_pids) {
        fprintf(out, "{");
        rss_json(out, "before", r->rss_before);
        fprintf(out, ", ");
        rss_json(out, "after_connect", r->rss_after);
        fprintf(out, ", ");
        rss_json(out, "end", r->rss_end);
        if (r->rss_before >= 0 && r->rss_after >= 0 && c->ok)
            fprintf(out, ", \"per_connection_kb\": %.3f",
                    (double)(r->rss_after - r->rss_before) / (double)c->ok);
        else
            fprintf(out, ", \"per_connection_kb\": null");
        fprintf(out, "},\n");
    } else {
        fprintf(out, "null,\n");
    }
    fprintf(out, "  \"duration_s\": %.3f\n}\n", r->wall_s);
    fflush(out);
}
