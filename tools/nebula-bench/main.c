/*
 * main.c — nebula-bench: command line, scenarios and the parent process.
 *
 * The parent forks the workers, then paces the run: wait until every worker
 * has ramped up, let the server settle, sample its RSS, order each step with
 * a common start instant a little in the future (the workers share
 * CLOCK_MONOTONIC), collect and merge the step reports, and finally ask the
 * workers to close. It prints progress on stderr and one JSON document on
 * stdout. Every wait has a deadline, so a stuck server cannot hang a run.
 */
#include "report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEP_LEAD_NS 300000000ull /* time for CMD_STEP to reach every worker */
#define REPORT_GRACE_NS 15000000000ull
#define QUIT_WAIT_NS 10000000000ull

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    g_stop = sig;
}

static const char usage_text[] =
    "usage: nebula-bench SCENARIO [options]\n"
    "\n"
    "WebSocket load generator for Nebula and servers speaking its minimal JSON\n"
    "protocol: clients connect to ws://HOST:PORT/ws?room=ROOM&username=USER, send\n"
    "{\"type\":\"message\",\"room\":ROOM,\"content\":\"t=<ns> s=<seq> xxx...\"} and time\n"
    "every copy the server delivers to the room's members (sender included).\n"
    "Frames other than type \"message\" are ignored. One JSON summary goes to\n"
    "stdout, progress to stderr.\n"
    "\n"
    "Scenarios (defaults in brackets):\n"
    "  S1, idle        N idle connections in rooms of 10, no traffic; reports the\n"
    "                  server's RSS per connection (needs --server-pid)\n"
    "                  [19000 connections, settle 2 s, hold 3 s]\n"
    "  S2, room        N connections in rooms of --room-size, every connection\n"
    "                  sends --rate msg/s for --duration s\n"
    "                  [1000 connections, rooms of 10, 1 msg/s, 10 s]\n"
    "  S3, broadcast   one room of M members (--room-size or --connections),\n"
    "                  --senders of them share a total rate R msg/s; steps\n"
    "                  through --rates R1,R2,... or, by default, raises R by 1.5x\n"
    "                  per step until delivered/s stops growing (<5%) or p99\n"
    "                  exceeds --p99-limit [2000 members, 20 senders, 5 s steps]\n"
    "  S4, saturation  the S2 shape at 0.1, 0.25, 0.5 and 1 msg/s per connection,\n"
    "                  back to back on the same connections\n"
    "                  [19000 connections, rooms of 10, 10 s per step]\n"
    "\n"
    "Target:\n"
    "  --host ADDR            server IPv4 address [127.0.0.1]\n"
    "  --port PORT            server port [8080]\n"
    "  --targets H:P,H:P,...  several servers (a cluster's nodes, up to 64) instead\n"
    "                         of --host/--port; connections are spread by --spread\n"
    "  --spread room|connection\n"
    "                         with --targets: room r goes to target r mod T, so a\n"
    "                         room's members share a node (no broker needed); or\n"
    "                         connection i to target i mod T, so every room spans\n"
    "                         the nodes (deliveries cross the broker) [room]\n"
    "  --server-pid PID[,PID...]\n"
    "                         sample the server's VmRSS (/proc/PID/status) before\n"
    "                         connecting, after all connected and idle, at the end;\n"
    "                         with several PIDs, their sum\n"
    "Shape:\n"
    "  --connections N        connections in total\n"
    "  --room-size N          members per room (rooms are filled in id order)\n"
    "  --senders N            how many connections send (spread evenly over ids)\n"
    "                         [S2, S4: all; S3: 20]\n"
    "  --rate R               msg/s per sending connection, fractional allowed;\n"
    "                         in S3 the total becomes R x senders\n"
    "  --rates LIST|auto      steps: comma-separated rates, run back to back.\n"
    "                         S2, S4: msg/s per connection; S3: msg/s for the\n"
    "                         whole room (deliveries/s = R x members)\n"
    "  --content-bytes N      length of each message's content [64]\n"
    "  --codec json|proto|mixed\n"
    "                         subprotocol nebula.json.v1 (text frames) or\n"
    "                         nebula.proto.v1 (binary); mixed: even ids JSON,\n"
    "                         odd ids Protobuf [json, without naming a subprotocol]\n"
    "Timing (seconds, fractional allowed):\n"
    "  --duration S           measured window of each step (S1: idle hold)\n"
    "  --warmup S             sending before the window, not measured [2]\n"
    "  --drain S              wait after the last send for late deliveries;\n"
    "                         what has not arrived by then is lost [2]\n"
    "  --settle S             idle time after the last connection, before the\n"
    "                         RSS sample and the first step [1; S1: 2]\n"
    "Connections:\n"
    "  --processes P          worker processes, each with its own event loop and\n"
    "                         at most 19900 connections (the 20000 open-file limit);\n"
    "                         more help S3 at high rates [ceil(N / 19000)]\n"
    "  --src-base ADDR|none   worker i binds its sockets to ADDR + i before\n"
    "                         connect(), so each has its own ephemeral ports\n"
    "                         [127.0.0.2 when the host is in 127.0.0.0/8]\n"
    "  --connect-rate R       new connections per second, all workers [2000]\n"
    "  --connect-timeout S    for TCP connect + upgrade [10]\n"
    "  --inflight N           upgrades in progress at once per worker [256]\n"
    "  --retries N            new attempts for a failed connection; every failed\n"
    "                         attempt is counted in attempt_failures [0]\n"
    "Stop rules and outcome:\n"
    "  --max-steps N          S3 auto: at most N steps [10]\n"
    "  --p99-limit MS         S3 auto: stop once p99 exceeds this [100]\n"
    "  --fail-on-loss         exit 1 if a message was lost or a connection failed\n"
    "                         or was dropped by the server\n"
    "  --room-prefix NAME     rooms are NAME-<index> [bench<pid>]\n"
    "  --seed N               phases and masking keys [from the clock]\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 when the run completed, 1 with --fail-on-loss and a loss,\n"
    "2 on a usage or run error, 130 when interrupted (the JSON is still printed).\n"
    "\n"
    "Examples:\n"
    "  nebula-bench S1 --port 9200 --connections 19000 --server-pid $(pidof nebula)\n"
    "  nebula-bench S2 --port 9200 --connections 1000 --rate 1 --duration 5 --fail-on-loss\n"
    "  nebula-bench S3 --port 9200 --room-size 2000 --senders 20 --rates 50,100,200,400\n"
    "  nebula-bench S4 --port 9100 --rates 0.1 --server-pid $(pidof go-gorilla)\n"
    "  nebula-bench S2 --targets 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103 \\\n"
    "      --connections 30000 --rate 0.1\n";

/* ---- argument parsing ------------------------------------------------- */

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "nebula-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see nebula-bench --help)\n");
    exit(2);
}

static double num(const char *opt, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "nebula-bench: %s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        exit(2);
    }
    return v;
}

static long whole(const char *opt, const char *s, long lo, long hi) {
    double v = num(opt, s, (double)lo, (double)hi);
    if (v != floor(v))
        die_usage("'%s' must be a whole number", s);
    return (long)v;
}

static int parse_rates(bench_params *p, const char *s) {
    if (strcmp(s, "auto") == 0) {
        p->auto_rates = true;
        p->n_rates = 0;
        return 0;
    }
    p->auto_rates = false;
    p->n_rates = 0;
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        die_usage("--rates: list too long: %s", s);
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (p->n_rates == BENCH_MAX_STEPS)
            die_usage("--rates: at most 64 steps: %s", s);
        p->rates[p->n_rates++] = num("--rates", tok, 1e-6, 1e7);
    }
    if (!p->n_rates)
        die_usage("--rates: empty list: '%s'", s);
    return 0;
}

static struct in_addr ipv4(const char *opt, const char *s) {
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "nebula-bench: %s: '%s' is not an IPv4 address\n", opt, s);
        exit(2);
    }
    return a;
}

/* --targets H:P,H:P,...: IPv4 addresses, as connect() needs no resolver. */
static void parse_targets(bench_params *p, const char *s) {
    char buf[4096];
    if (strlen(s) >= sizeof buf)
        die_usage("--targets: list too long: '%.40s...'", s);
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    p->n_targets = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (p->n_targets == BENCH_MAX_TARGETS)
            die_usage("--targets: at most 64 servers: %.60s", s);
        char *colon = strrchr(tok, ':');
        if (!colon || colon == tok || (size_t)(colon - tok) >= sizeof p->targets[0].host)
            die_usage("--targets: '%s' is not HOST:PORT", tok);
        *colon = '\0';
        bench_target *t = &p->targets[p->n_targets++];
        snprintf(t->host, sizeof t->host, "%s", tok);
        t->addr = ipv4("--targets", tok);
        t->port = (uint16_t)whole("--targets port", colon + 1, 1, 65535);
    }
    if (!p->n_targets)
        die_usage("--targets: empty list: '%s'", s);
}

/* --server-pid PID[,PID...] */
static void parse_pids(bench_params *p, const char *s) {
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        die_usage("--server-pid: list too long: '%.40s...'", s);
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    p->n_server_pids = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (p->n_server_pids == BENCH_MAX_TARGETS)
            die_usage("--server-pid: at most 64 PIDs: %.60s", s);
        p->server_pids[p->n_server_pids++] = whole("--server-pid", tok, 1, 1L << 30);
    }
    if (!p->n_server_pids)
        die_usage("--server-pid: empty list: '%s'", s);
}

static bool loopback(struct in_addr a) {
    return (ntohl(a.s_addr) >> 24) == 127;
}

enum {
    O_HOST = 256,
    O_PORT,
    O_CONNS,
    O_ROOM,
    O_RATE,
    O_RATES,
    O_SENDERS,
    O_DURATION,
    O_WARMUP,
    O_DRAIN,
    O_SETTLE,
    O_CONTENT,
    O_PROCS,
    O_SRC,
    O_CRATE,
    O_CTIMEOUT,
    O_INFLIGHT,
    O_RETRIES,
    O_PID,
    O_FAIL,
    O_MAXSTEPS,
    O_P99,
    O_PREFIX,
    O_SEED,
    O_SCEN,
    O_CODEC,
    O_TARGETS,
    O_SPREAD,
};

static void parse_args(bench_params *p, int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"connections", required_argument, NULL, O_CONNS},
        {"room-size", required_argument, NULL, O_ROOM},
        {"rate", required_argument, NULL, O_RATE},
        {"rates", required_argument, NULL, O_RATES},
        {"senders", required_argument, NULL, O_SENDERS},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"drain", required_argument, NULL, O_DRAIN},
        {"settle", required_argument, NULL, O_SETTLE},
        {"content-bytes", required_argument, NULL, O_CONTENT},
        {"processes", required_argument, NULL, O_PROCS},
        {"src-base", required_argument, NULL, O_SRC},
        {"connect-rate", required_argument, NULL, O_CRATE},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"server-pid", required_argument, NULL, O_PID},
        {"fail-on-loss", no_argument, NULL, O_FAIL},
        {"max-steps", required_argument, NULL, O_MAXSTEPS},
        {"p99-limit", required_argument, NULL, O_P99},
        {"room-prefix", required_argument, NULL, O_PREFIX},
        {"seed", required_argument, NULL, O_SEED},
        {"scenario", required_argument, NULL, O_SCEN},
        {"codec", required_argument, NULL, O_CODEC},
        {"targets", required_argument, NULL, O_TARGETS},
        {"spread", required_argument, NULL, O_SPREAD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* -1 / NAN: not given, the scenario's default applies */
    long conns = -1, room = -1, senders = -1, content = 64, procs = -1;
    double rate = NAN, duration = NAN, warmup = 2, drain = 2, settle = NAN;
    const char *rates = NULL, *scen = NULL, *src = NULL;
    const char *host = NULL, *targets = NULL;
    long port = -1;
    p->connect_rate = 2000;
    p->connect_timeout = 10;
    p->inflight = 256;
    p->retries = 0;
    p->max_steps = 10;
    p->p99_limit_ms = 100;
    p->seed = now_ns();
    snprintf(p->room_prefix, sizeof p->room_prefix, "bench%ld", (long)getpid());

    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case O_HOST:
            host = optarg;
            break;
        case O_PORT:
            port = whole("--port", optarg, 1, 65535);
            break;
        case O_CONNS:
            conns = whole("--connections", optarg, 1, 1000000);
            break;
        case O_ROOM:
            room = whole("--room-size", optarg, 1, 1000000);
            break;
        case O_RATE:
            rate = num("--rate", optarg, 1e-6, 1e6);
            break;
        case O_RATES:
            rates = optarg;
            break;
        case O_SENDERS:
            senders = whole("--senders", optarg, 1, 1000000);
            break;
        case O_DURATION:
            duration = num("--duration", optarg, 0.1, 3600);
            break;
        case O_WARMUP:
            warmup = num("--warmup", optarg, 0, 600);
            break;
        case O_DRAIN:
            drain = num("--drain", optarg, 0, 600);
            break;
        case O_SETTLE:
            settle = num("--settle", optarg, 0, 600);
            break;
        case O_CODEC:
            if (strcmp(optarg, "json") == 0)
                p->codec = CODEC_JSON;
            else if (strcmp(optarg, "proto") == 0)
                p->codec = CODEC_PROTO;
            else if (strcmp(optarg, "mixed") == 0)
                p->codec = CODEC_MIXED;
            else
                die_usage("--codec must be json, proto or mixed, not '%s'", optarg);
            p->codec_given = true;
            break;
        case O_CONTENT:
            content = whole("--content-bytes", optarg, 16, 60000);
            break;
        case O_PROCS:
            procs = whole("--processes", optarg, 1, 250);
            break;
        case O_SRC:
            src = optarg;
            break;
        case O_CRATE:
            p->connect_rate = num("--connect-rate", optarg, 1, 1e6);
            break;
        case O_CTIMEOUT:
            p->connect_timeout = num("--connect-timeout", optarg, 0.1, 120);
            break;
        case O_INFLIGHT:
            p->inflight = (int)whole("--inflight", optarg, 1, 19900);
            break;
        case O_RETRIES:
            p->retries = (int)whole("--retries", optarg, 0, 10);
            break;
        case O_PID:
            parse_pids(p, optarg);
            break;
        case O_FAIL:
            p->fail_on_loss = true;
            break;
        case O_MAXSTEPS:
            p->max_steps = (int)whole("--max-steps", optarg, 1, BENCH_MAX_STEPS);
            break;
        case O_P99:
            p->p99_limit_ms = num("--p99-limit", optarg, 0.001, 1e6);
            break;
        case O_PREFIX:
            if (strlen(optarg) < 1 || strlen(optarg) >= sizeof p->room_prefix ||
                strspn(optarg,
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
                    strlen(optarg))
                die_usage("--room-prefix: 1-23 letters, digits, '_', '-', '.': '%s'", optarg);
            snprintf(p->room_prefix, sizeof p->room_prefix, "%s", optarg);
            break;
        case O_SEED:
            p->seed = (uint64_t)whole("--seed", optarg, 0, 1L << 52);
            break;
        case O_SCEN:
            scen = optarg;
            break;
        case O_TARGETS:
            targets = optarg;
            break;
        case O_SPREAD:
            if (strcmp(optarg, "room") == 0)
                p->spread = SPREAD_ROOM;
            else if (strcmp(optarg, "connection") == 0)
                p->spread = SPREAD_CONNECTION;
            else
                die_usage("--spread must be room or connection, not '%s'", optarg);
            break;
        default:
            fprintf(stderr, "(see nebula-bench --help)\n");
            exit(2);
        }
    }
    if (!scen && optind < argc)
        scen = argv[optind++];
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (!scen)
        die_usage("%s", "name a scenario: S1, S2, S3 or S4");

    if (!strcasecmp(scen, "S1") || !strcasecmp(scen, "idle")) {
        p->scen = SC_S1;
        p->scen_name = "S1";
    } else if (!strcasecmp(scen, "S2") || !strcasecmp(scen, "room")) {
        p->scen = SC_S2;
        p->scen_name = "S2";
    } else if (!strcasecmp(scen, "S3") || !strcasecmp(scen, "broadcast")) {
        p->scen = SC_S3;
        p->scen_name = "S3";
    } else if (!strcasecmp(scen, "S4") || !strcasecmp(scen, "saturation")) {
        p->scen = SC_S4;
        p->scen_name = "S4";
    } else {
        die_usage("unknown scenario '%s' (S1, S2, S3 or S4)", scen);
    }

    /* scenario defaults */
    switch (p->scen) {
    case SC_S1:
        p->connections = conns > 0 ? conns : 19000;
        p->room_size = room > 0 ? room : 10;
        p->duration = isnan(duration) ? 3 : duration;
        p->settle = isnan(settle) ? 2 : settle;
        p->senders = 0;
        break;
    case SC_S2:
    case SC_S4:
        p->connections = conns > 0 ? conns : p->scen == SC_S2 ? 1000 : 19000;
        p->room_size = room > 0 ? room : 10;
        p->duration = isnan(duration) ? 10 : duration;
        p->settle = isnan(settle) ? 1 : settle;
        p->senders = senders > 0 ? senders : p->connections;
        if (rates) {
            parse_rates(p, rates);
            if (p->auto_rates)
                die_usage("--rates auto is for S3 only%s", "");
        } else if (p->scen == SC_S4 && isnan(rate)) {
            parse_rates(p, "0.1,0.25,0.5,1");
        } else {
            p->rates[0] = isnan(rate) ? 1 : rate;
            p->n_rates = 1;
        }
        break;
    case SC_S3:
        /* one room: its size is the connection count */
        p->connections = room > 0 ? room : conns > 0 ? conns : 2000;
        if (room > 0 && conns > 0 && room != conns)
            die_usage("S3 is one room: give --room-size or --connections, not both%s", "");
        p->room_size = p->connections;
        p->duration = isnan(duration) ? 5 : duration;
        p->settle = isnan(settle) ? 1 : settle;
        p->senders = senders > 0 ? senders : 20;
        if (rates) {
            parse_rates(p, rates);
        } else if (!isnan(rate)) {
            p->rates[0] =
                rate * (double)(p->senders > p->connections ? p->connections : p->senders);
            p->n_rates = 1;
        } else {
            p->auto_rates = true;
        }
        break;
    }
    if (p->senders > p->connections)
        p->senders = p->connections;
    if (p->room_size > p->connections)
        p->room_size = p->connections;
    p->rooms = (p->connections + p->room_size - 1) / p->room_size;
    p->warmup = warmup;
    p->drain = drain;
    p->content_bytes = content;

    if (targets) {
        if (host || port >= 0)
            die_usage("%s", "--targets replaces --host and --port: give one or the other");
        parse_targets(p, targets);
    } else {
        bench_target *t = &p->targets[0];
        host = host ? host : "127.0.0.1";
        if (strlen(host) >= sizeof t->host)
            die_usage("--host: too long: '%.40s...'", host);
        snprintf(t->host, sizeof t->host, "%s", host);
        t->addr = ipv4("--host", host);
        t->port = (uint16_t)(port >= 0 ? port : 8080);
        p->n_targets = 1;
    }
    if (src && strcmp(src, "none") == 0) {
        p->src_bind = false;
    } else if (src) {
        p->src_bind = true;
        p->src_base = ipv4("--src-base", src);
    } else if (loopback(p->targets[0].addr)) {
        p->src_bind = true;
        p->src_base = ipv4("--src-base", "127.0.0.2");
    }

    long min_procs = (p->connections + BENCH_MAX_CONNS_PER_WORKER - 1) / BENCH_MAX_CONNS_PER_WORKER;
    if (procs < 0) {
        /* As few workers as the open-file limit allows: on a small machine
         * each extra one adds wake-ups that compete with the server. */
        procs = (p->connections + 18999) / 19000;
    }
    if (procs < min_procs) {
        fprintf(stderr,
                "nebula-bench: %ld connections need at least %ld processes (%d per process)\n",
                p->connections, min_procs, BENCH_MAX_CONNS_PER_WORKER);
        exit(2);
    }
    if (procs > p->connections)
        procs = p->connections;
    p->processes = (int)procs;
    if (p->src_bind) {
        uint32_t b = ntohl(p->src_base.s_addr);
        if ((b & 0xff) + (uint32_t)p->processes - 1 > 254) {
            fprintf(stderr, "nebula-bench: --src-base %s + %d processes leaves the /24\n",
                    src ? src : "127.0.0.2", p->processes);
            exit(2);
        }
    }
}

/* ---- the parent ----------------------------------------------------------- */

typedef struct wproc {
    pid_t pid;
    int fd;
    bool connected, step_done, bye;
    progress_report prog;
} wproc;

typedef struct parent {
    const bench_params *p;
    wproc *w;
    int n;
    run_result *r;
    uint8_t *buf; /* one incoming message */
    size_t buf_cap;
    step_result *cur;  /* the step whose reports are being merged */
    uint32_t *members; /* [rooms], summed over workers */
    uint64_t *sends;   /* [rooms] */
    const char *phase; /* for progress lines */
    uint64_t phase_t0, last_print;
} parent;

static long read_rss_kb(long pid) {
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The servers' VmRSS added up; -1 when one of them cannot be read. */
static long read_rss_total_kb(const bench_params *p) {
    long sum = 0;
    for (int i = 0; i < p->n_server_pids; i++) {
        long kb = read_rss_kb(p->server_pids[i]);
        if (kb < 0)
            return -1;
        sum += kb;
    }
    return sum;
}

static void fail_run(parent *P, const char *fmt, const char *arg) {
    if (!P->r->error[0])
        snprintf(P->r->error, sizeof P->r->error, fmt, arg);
    P->r->status = "error";
}

static int on_msg(parent *P, wproc *wp, const msg_hdr *h) {
    const uint8_t *b = P->buf;
    size_t rooms = (size_t)P->p->rooms;
    switch (h->type) {
    case MSG_PROGRESS:
        if (h->len != sizeof wp->prog)
            return -1;
        memcpy(&wp->prog, b, sizeof wp->prog);
        return 0;
    case MSG_CONNECTED: {
        connect_report cr;
        if (h->len != sizeof cr)
            return -1;
        memcpy(&cr, b, sizeof cr);
        connect_report *m = &P->r->conn;
        m->ok += cr.ok;
        m->failed += cr.failed;
        m->attempt_failures += cr.attempt_failures;
        if (cr.t_first && (!m->t_first || cr.t_first < m->t_first))
            m->t_first = cr.t_first;
        if (cr.t_last > m->t_last)
            m->t_last = cr.t_last;
        hist_merge(&m->connect, &cr.connect);
        wp->prog.ok = cr.ok;
        wp->prog.failed = cr.failed;
        wp->connected = true;
        return 0;
    }
    case MSG_STEP: {
        size_t want = sizeof(step_report) + rooms * (sizeof(uint32_t) + sizeof(uint64_t));
        if (h->len != want || !P->cur)
            return -1;
        step_report *sr = malloc(sizeof *sr);
        if (!sr)
            return -1;
        memcpy(sr, b, sizeof *sr);
        step_merge(&P->cur->agg, sr);
        free(sr);
        const uint8_t *mem = b + sizeof(step_report);
        const uint8_t *snd = mem + rooms * sizeof(uint32_t);
        for (size_t i = 0; i < rooms; i++) {
            uint32_t m;
            uint64_t s;
            memcpy(&m, mem + i * sizeof m, sizeof m);
            memcpy(&s, snd + i * sizeof s, sizeof s);
            P->members[i] += m;
            P->sends[i] += s;
        }
        wp->step_done = true;
        return 0;
    }
    case MSG_BYE:
        if (h->len != sizeof wp->prog)
            return -1;
        memcpy(&wp->prog, b, sizeof wp->prog);
        wp->bye = true;
        return 0;
    default:
        return -1;
    }
}

static void print_progress(parent *P, uint64_t now) {
    progress_report t = {0};
    for (int i = 0; i < P->n; i++) {
        t.ok += P->w[i].prog.ok;
        t.failed += P->w[i].prog.failed;
        t.attempt_failures += P->w[i].prog.attempt_failures;
        t.dropped += P->w[i].prog.dropped;
        t.sent += P->w[i].prog.sent;
        t.delivered += P->w[i].prog.delivered;
    }
    fprintf(stderr,
            "nebula-bench: %-22s %6.1f s  conns %llu/%ld ok, %llu failed, %llu dropped  sent %llu "
            "delivered %llu\n",
            P->phase, (double)(now - P->phase_t0) / 1e9, (unsigned long long)t.ok,
            P->p->connections, (unsigned long long)t.failed, (unsigned long long)t.dropped,
            (unsigned long long)t.sent, (unsigned long long)t.delivered);
}

/* Handle worker messages until `done` holds for every worker or the
 * deadline passes (0 when done, 1 on timeout, -1 when a worker died or the
 * run was interrupted). done == NULL waits for the deadline alone. */
static int pump_until(parent *P, bool (*done)(const wproc *), uint64_t deadline) {
    struct pollfd *pf = calloc((size_t)P->n, sizeof *pf);
    if (!pf)
        return -1;
    int rc = 1;
    for (;;) {
        if (done) {
            bool all = true;
            for (int i = 0; i < P->n && all; i++)
                all = done(&P->w[i]);
            if (all) {
                rc = 0;
                break;
            }
        }
        if (g_stop) {
            rc = -1;
            break;
        }
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        if (now - P->last_print >= 1000000000ull) {
            print_progress(P, now);
            P->last_print = now;
        }
        uint64_t wait = deadline - now;
        if (wait > 200000000ull)
            wait = 200000000ull;
        for (int i = 0; i < P->n; i++) {
            pf[i].fd = P->w[i].bye ? -1 : P->w[i].fd;
            pf[i].events = POLLIN;
        }
        int n = poll(pf, (nfds_t)P->n, (int)(wait / 1000000u) + 1);
        if (n < 0 && errno != EINTR) {
            fail_run(P, "poll: %s", strerror(errno));
            rc = -1;
            break;
        }
        bool broken = false;
        for (int i = 0; i < P->n && n > 0 && !broken; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            msg_hdr h;
            if (ipc_read_all(P->w[i].fd, &h, sizeof h) != 0 || h.len > P->buf_cap ||
                ipc_read_all(P->w[i].fd, P->buf, h.len) != 0 || on_msg(P, &P->w[i], &h) != 0) {
                char who[32];
                snprintf(who, sizeof who, "%d", i);
                fail_run(P, "worker %s died or sent garbage", who);
                broken = true;
            }
        }
        if (broken) {
            rc = -1;
            break;
        }
    }
    free(pf);
    return rc;
}

static bool is_connected(const wproc *w) {
    return w->connected;
}
static bool is_step_done(const wproc *w) {
    return w->step_done;
}
static bool is_bye(const wproc *w) {
    return w->bye;
}

static void broadcast(parent *P, uint32_t type, const void *a, size_t alen) {
    for (int i = 0; i < P->n; i++) {
        if (P->w[i].bye || ipc_send(P->w[i].fd, type, a, alen, NULL, 0, NULL, 0) == 0)
            continue;
        char who[32];
        snprintf(who, sizeof who, "%d", i);
        fail_run(P, "cannot reach worker %s", who);
    }
}

/* Runs one step; 0 when every worker reported. */
static int run_step(parent *P, double rate_per_sender, int index, int total) {
    const bench_params *p = P->p;
    step_result *s = &P->r->steps[P->r->n_steps];
    memset(s, 0, sizeof *s);
    hist_reset(&s->agg.latency);
    hist_reset(&s->agg.at_socket);
    hist_reset(&s->agg.lag);
    s->rate_per_sender = rate_per_sender;
    s->window_s = p->duration;
    P->cur = s;
    memset(P->members, 0, (size_t)p->rooms * sizeof *P->members);
    memset(P->sends, 0, (size_t)p->rooms * sizeof *P->sends);
    for (int i = 0; i < P->n; i++)
        P->w[i].step_done = false;

    cmd_step cmd = {.index = (uint32_t)index, .rate_per_sender = rate_per_sender};
    cmd.t_start = now_ns() + STEP_LEAD_NS;
    cmd.m_start = cmd.t_start + (uint64_t)(p->warmup * 1e9);
    cmd.m_end = cmd.m_start + (uint64_t)(p->duration * 1e9);
    cmd.t_drain = cmd.m_end + (uint64_t)(p->drain * 1e9);

    static char phase[64];
    snprintf(phase, sizeof phase, "%s step %d/%d %g/s", p->scen_name, index + 1, total,
             p->scen == SC_S3 ? rate_per_sender * (double)p->senders : rate_per_sender);
    P->phase = phase;
    P->phase_t0 = cmd.t_start;
    broadcast(P, CMD_STEP, &cmd, sizeof cmd);
    int rc = pump_until(P, is_step_done, cmd.t_drain + REPORT_GRACE_NS);
    P->cur = NULL;
    if (rc != 0) {
        if (rc > 0)
            fail_run(P, "step %s: a worker did not report in time", phase);
        return -1;
    }
    for (long i = 0; i < p->rooms; i++) {
        s->members += P->members[i];
        s->expected += P->sends[i] * P->members[i];
    }
    P->r->n_steps++;
    fprintf(stderr,
            "nebula-bench: %s: sent %llu, delivered %llu of %llu (lost %lld), %.0f/s, "
            "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
            phase, (unsigned long long)s->agg.sent, (unsigned long long)s->agg.delivered,
            (unsigned long long)s->expected, (long long)step_lost(s), step_delivered_per_s(s),
            (double)hist_quantile(&s->agg.latency, 0.5) / 1e6,
            (double)hist_quantile(&s->agg.latency, 0.99) / 1e6, (double)s->agg.latency.max / 1e6);
    return 0;
}

static bool within_limit(const bench_params *p, const step_result *s) {
    return s->agg.latency.count &&
           (double)hist_quantile(&s->agg.latency, 0.99) / 1e6 <= p->p99_limit_ms && !s->agg.dropped;
}

static void run_steps(parent *P) {
    const bench_params *p = P->p;
    run_result *r = P->r;
    double senders = (double)(p->senders ? p->senders : 1);
    r->stopped_by = "rates";
    if (!p->auto_rates) {
        for (int i = 0; i < p->n_rates && !g_stop; i++) {
            /* S3 rates are for the whole room, shared by its senders */
            double per = p->scen == SC_S3 ? p->rates[i] / senders : p->rates[i];
            if (run_step(P, per, i, p->n_rates) != 0) {
                r->stopped_by = "error";
                return;
            }
        }
    } else {
        /* S3 auto: start at 50k deliveries/s and raise by half each step */
        double total = 50000.0 / (double)p->connections;
        double best = 0;
        r->stopped_by = "max_steps";
        for (int i = 0; i < p->max_steps && !g_stop; i++) {
            if (run_step(P, total / senders, i, p->max_steps) != 0) {
                r->stopped_by = "error";
                return;
            }
            const step_result *s = &r->steps[r->n_steps - 1];
            double d = step_delivered_per_s(s);
            if (!within_limit(p, s)) {
                fprintf(stderr, "nebula-bench: p99 over %g ms (or connections dropped): stop\n",
                        p->p99_limit_ms);
                r->stopped_by = "p99_limit";
                break;
            }
            if (d < best * 1.05) {
                fprintf(stderr, "nebula-bench: delivered/s stopped growing: stop\n");
                r->stopped_by = "plateau";
                break;
            }
            best = d;
            total *= 1.5;
        }
    }
    if (p->scen == SC_S3) {
        double best = -1;
        for (int i = 0; i < r->n_steps; i++) {
            double d = step_delivered_per_s(&r->steps[i]);
            if (within_limit(p, &r->steps[i]) && d > best) {
                best = d;
                r->best_step = i;
            }
        }
    }
}

static void stop_workers(parent *P) {
    for (int i = 0; i < P->n; i++)
        if (P->w[i].pid > 0)
            kill(P->w[i].pid, SIGKILL);
}

static int run(const bench_params *p, run_result *r) {
    uint64_t t0 = now_ns();
    r->status = "ok";
    r->best_step = -1;
    r->rss_before = r->rss_after = r->rss_end = -1;
    hist_reset(&r->conn.connect);
    parent P = {.p = p, .n = p->processes, .r = r, .phase = "connect", .phase_t0 = t0};
    P.last_print = t0;
    P.buf_cap = sizeof(step_report) + (size_t)p->rooms * 12 + sizeof(connect_report);
    P.buf = malloc(P.buf_cap);
    P.w = calloc((size_t)P.n, sizeof *P.w);
    P.members = calloc((size_t)p->rooms, sizeof *P.members);
    P.sends = calloc((size_t)p->rooms, sizeof *P.sends);
    if (!P.buf || !P.w || !P.members || !P.sends) {
        fail_run(&P, "%s", "out of memory");
        goto out;
    }

    if (p->n_server_pids) {
        r->rss_before = read_rss_total_kb(p);
        if (r->rss_before < 0)
            fprintf(stderr, "nebula-bench: cannot read /proc/PID/status of a --server-pid: no "
                            "RSS figures\n");
    }
    fprintf(stderr,
            "nebula-bench: %s against %s:%u%s: %ld connections in %ld room(s) of %ld, %d "
            "process(es)\n",
            p->scen_name, p->targets[0].host, (unsigned)p->targets[0].port,
            p->n_targets > 1 ? " and more (--targets)" : "", p->connections, p->rooms, p->room_size,
            p->processes);

    fflush(NULL);
    for (int i = 0; i < P.n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            fail_run(&P, "socketpair: %s", strerror(errno));
            goto out;
        }
        pid_t pid = fork();
        if (pid < 0) {
            close(sv[0]);
            close(sv[1]);
            fail_run(&P, "fork: %s", strerror(errno));
            goto out;
        }
        if (pid == 0) {
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(P.w[j].fd);
            int rc = worker_main(p, i, sv[1]);
            close(sv[1]);
            free(P.buf);
            free(P.w);
            free(P.members);
            free(P.sends);
            free(r);
            exit(rc);
        }
        close(sv[1]);
        P.w[i].pid = pid;
        P.w[i].fd = sv[0];
    }

    /* ramp-up: the connect rate, then the slowest attempt's timeout */
    uint64_t ramp = (uint64_t)((double)p->connections / p->connect_rate * 1e9) +
                    (uint64_t)((p->connect_timeout + 30) * (p->retries + 1) * 1e9);
    if (pump_until(&P, is_connected, t0 + ramp) != 0) {
        if (!g_stop)
            fail_run(&P, "%s", "connections did not finish in time");
        goto quit;
    }
    if (r->conn.t_last > r->conn.t_first)
        r->ramp_s = (double)(r->conn.t_last - r->conn.t_first) / 1e9;
    fprintf(stderr,
            "nebula-bench: connected %llu, failed %llu (%llu failed attempts) in %.2f s; "
            "connect p50 %.2f ms, p99 %.2f ms\n",
            (unsigned long long)r->conn.ok, (unsigned long long)r->conn.failed,
            (unsigned long long)r->conn.attempt_failures, r->ramp_s,
            (double)hist_quantile(&r->conn.connect, 0.5) / 1e6,
            (double)hist_quantile(&r->conn.connect, 0.99) / 1e6);

    if (r->conn.ok == 0) {
        fail_run(&P, "%s", "no connection succeeded");
        goto quit;
    }

    P.phase = "settle";
    P.phase_t0 = now_ns();
    if (pump_until(&P, NULL, P.phase_t0 + (uint64_t)(p->settle * 1e9)) < 0)
        goto quit;
    r->rss_after = p->n_server_pids ? read_rss_total_kb(p) : -1;

    if (p->scen == SC_S1) {
        P.phase = "S1 idle";
        P.phase_t0 = now_ns();
        if (pump_until(&P, NULL, P.phase_t0 + (uint64_t)(p->duration * 1e9)) < 0)
            goto quit;
    } else {
        run_steps(&P);
    }
    r->rss_end = p->n_server_pids ? read_rss_total_kb(p) : -1;

quit:
    if (g_stop && strcmp(r->status, "error") != 0) {
        r->status = "interrupted";
        if (r->stopped_by)
            r->stopped_by = "interrupted";
    }
    P.phase = "closing";
    P.phase_t0 = now_ns();
    g_stop = 0; /* let the close handshake run */
    broadcast(&P, CMD_QUIT, NULL, 0);
    if (pump_until(&P, is_bye, now_ns() + QUIT_WAIT_NS) != 0)
        stop_workers(&P);
out:
    for (int i = 0; P.w && i < P.n; i++) {
        if (P.w[i].pid > 0) {
            int st;
            uint64_t until = now_ns() + 3000000000ull;
            while (waitpid(P.w[i].pid, &st, WNOHANG) == 0) {
                if (now_ns() > until) {
                    kill(P.w[i].pid, SIGKILL);
                    waitpid(P.w[i].pid, &st, 0);
                    break;
                }
                usleep(10000);
            }
        }
        if (P.w[i].fd > 0)
            close(P.w[i].fd);
    }
    r->dropped = 0;
    for (int i = 0; P.w && i < P.n; i++)
        r->dropped += P.w[i].prog.dropped;
    r->wall_s = (double)(now_ns() - t0) / 1e9;
    free(P.buf);
    free(P.w);
    free(P.members);
    free(P.sends);
    return strcmp(r->status, "ok") == 0 ? 0 : strcmp(r->status, "interrupted") == 0 ? 130 : 2;
}

int main(int argc, char **argv) {
    bench_params p = {0};
    parse_args(&p, argc, argv);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    run_result *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "nebula-bench: out of memory\n");
        return 2;
    }
    int rc = run(&p, r);
    report_print(stdout, &p, r);
    if (rc == 0 && p.fail_on_loss) {
        int64_t lost = 0;
        for (int i = 0; i < r->n_steps; i++)
            lost += step_lost(&r->steps[i]);
        if (lost != 0 || r->conn.failed || r->dropped || r->conn.ok == 0) {
            fprintf(stderr, "nebula-bench: --fail-on-loss: lost %lld, failed %llu, dropped %llu\n",
                    (long long)lost, (unsigned long long)r->conn.failed,
                    (unsigned long long)r->dropped);
            rc = 1;
        }
    }
    if (rc == 2)
        fprintf(stderr, "nebula-bench: %s\n", r->error);
    free(r);
    return rc;
}
