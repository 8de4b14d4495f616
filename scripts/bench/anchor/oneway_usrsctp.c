/*
 * The C anchor of the usrsctp transport in `deno task bench transports`: the
 * same one-way measurement as `oneway.c`, on libusrsctp's blocking API
 * (sockets without callbacks, usrsctp_sendv / usrsctp_recvv) over UDP
 * encapsulation, with the socket options of `transport/usrsctp.ts`, so the
 * benchmark can print Deno/C for usrsctp measured in the same run.
 *
 *   oneway_usrsctp server HOST PORT UDPPORT [SACKFREQ SACKDELAY]  (prints "ready")
 *   oneway_usrsctp client HOST PORT UDPPORT SIZE COUNT [PATHMTU [SACKFREQ SACKDELAY]]
 *                                                    (prints the seconds)
 *
 * The server runs its stack on UDP port UDPPORT; the client runs its own on a
 * free UDP port the OS picks and sends to the server's UDPPORT (the
 * transport's `udpPort`). The client sends COUNT messages of SIZE bytes on
 * stream 0, then a 1-byte end marker; the server counts them and answers the
 * marker with 16 bytes (two doubles: messages, bytes), which the client
 * checks against what it sent. Time runs from the first send until the answer
 * arrives; a warm-up batch goes first. Options, as the transport sets them:
 * 8 streams, SCTP_NODELAY, SCTP_RECVRCVINFO, association-change events,
 * 4 MiB send and receive buffers, 4 MiB buffers on the stack's UDP sockets,
 * and on the client a path MTU of PATHMTU bytes with discovery off when
 * PATHMTU is given and not 0 (the transport's resolved `pathMtu`; the
 * transport also raises the associations it accepts, but here those only
 * answer with 16 bytes), and SCTP_DELAYED_SACK with SACKFREQ packets and
 * SACKDELAY ms when either is given and not 0 (`sackFrequency`, `sackDelay`).
 *
 * Build: gcc -O2 -o oneway_usrsctp oneway_usrsctp.c -lusrsctp -lpthread
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <usrsctp.h>

#define BUFFER_BYTES (4 << 20)
#define RECEIVE_CAPACITY (1 << 20)

/* The client's path MTU; 0 leaves path MTU discovery on. */
static uint32_t path_mtu;
/* SCTP_DELAYED_SACK's frequency and delay; 0 leaves the stack's own. */
static uint32_t sack_freq, sack_delay;

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Binds a throwaway UDP socket to `port` (0: any free one) and returns the port. */
static uint16_t probe_udp_port(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  socklen_t length = sizeof addr;
  if (fd < 0) die("socket(SOCK_DGRAM)");
  /* usrsctp_init does not report a UDP port it could not bind. */
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind(UDP port)");
  if (getsockname(fd, (struct sockaddr *)&addr, &length) < 0) die("getsockname");
  close(fd);
  return ntohs(addr.sin_port);
}

/*
 * usrsctp gives its UDP sockets the system's default buffers, which a burst
 * overflows (every drop costs a retransmission timeout); the library does not
 * expose them, so they are found by type and bound port, as the transport does.
 */
static void widen_udp_buffers(uint16_t port) {
  int buffer = BUFFER_BYTES;
  for (int fd = 3; fd < 1024; fd++) {
    int type;
    socklen_t length = sizeof type;
    struct sockaddr_storage addr;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_DGRAM) continue;
    length = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &length) < 0) continue;
    /* sin_port and sin6_port: same offset. */
    if (ntohs(((struct sockaddr_in *)&addr)->sin_port) != port) continue;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  }
}

static void start_stack(uint16_t udp_port) {
  uint16_t port = probe_udp_port(udp_port);
  usrsctp_init(port, NULL, NULL);
  widen_udp_buffers(port);
}

static void set_option(struct socket *so, int level, int name, const void *value, socklen_t length,
                       const char *what) {
  if (usrsctp_setsockopt(so, level, name, value, length) < 0) die(what);
}

static struct socket *open_socket(void) {
  struct socket *so = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
  if (!so) die("usrsctp_socket");
  int one = 1, buffer = BUFFER_BYTES;
  struct sctp_initmsg init = {.sinit_num_ostreams = 8, .sinit_max_instreams = 8};
  struct sctp_event events = {
      .se_assoc_id = SCTP_FUTURE_ASSOC, .se_type = SCTP_ASSOC_CHANGE, .se_on = 1};
  set_option(so, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init, "SCTP_INITMSG");
  set_option(so, IPPROTO_SCTP, SCTP_NODELAY, &one, sizeof one, "SCTP_NODELAY");
  set_option(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, &one, sizeof one, "SCTP_RECVRCVINFO");
  set_option(so, IPPROTO_SCTP, SCTP_EVENT, &events, sizeof events, "SCTP_EVENT");
  set_option(so, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer, "SO_SNDBUF");
  set_option(so, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer, "SO_RCVBUF");
  if (sack_freq > 0 || sack_delay > 0) {
    struct sctp_sack_info sack = {
        .sack_assoc_id = SCTP_FUTURE_ASSOC, .sack_delay = sack_delay, .sack_freq = sack_freq};
    set_option(so, IPPROTO_SCTP, SCTP_DELAYED_SACK, &sack, sizeof sack, "SCTP_DELAYED_SACK");
  }
  if (path_mtu > 0) {
    struct sctp_paddrparams params;
    memset(&params, 0, sizeof params);
    params.spp_assoc_id = SCTP_FUTURE_ASSOC;
    params.spp_pathmtu = path_mtu;
    params.spp_flags = SPP_PMTUD_DISABLE;
    set_option(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &params, sizeof params,
               "SCTP_PEER_ADDR_PARAMS");
  }
  return so;
}

static void send_message(struct socket *so, const void *data, size_t length) {
  struct sctp_sndinfo info = {.snd_sid = 0};
  if (usrsctp_sendv(so, data, length, NULL, 0, &info, sizeof info, SCTP_SENDV_SNDINFO, 0) < 0) {
    die("usrsctp_sendv");
  }
}

/* Whether a whole notification ends the association (abort or orderly end). */
static int ends(const union sctp_notification *n) {
  if (n->sn_header.sn_type != SCTP_ASSOC_CHANGE) return 0;
  uint16_t state = n->sn_assoc_change.sac_state;
  return state == SCTP_COMM_LOST || state == SCTP_SHUTDOWN_COMP;
}

/* The next whole message into `buffer`; its length, or -1 at the end of the association. */
static long receive_message(struct socket *so, char *buffer, size_t capacity) {
  size_t length = 0;
  for (;;) {
    struct sctp_rcvinfo info;
    socklen_t info_length = sizeof info;
    unsigned int info_type = 0;
    int flags = 0;
    ssize_t n = usrsctp_recvv(so, buffer + length, capacity - length, NULL, NULL, &info,
                              &info_length, &info_type, &flags);
    if (n <= 0) return -1;
    length += (size_t)n;
    if (!(flags & MSG_EOR)) {
      if (length == capacity) return -1;
      continue;
    }
    if (!(flags & MSG_NOTIFICATION)) return (long)length;
    if (ends((const union sctp_notification *)buffer)) return -1;
    length = 0;
  }
}

static struct sockaddr_in address(const char *host, const char *port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
  return addr;
}

/* One association per thread, so one that lingers cannot hold up the next client. */
static void *serve_association(void *arg) {
  struct socket *so = arg;
  char *buffer = malloc(RECEIVE_CAPACITY);
  double counts[2] = {0, 0};
  if (!buffer) die("malloc");
  for (long n; (n = receive_message(so, buffer, RECEIVE_CAPACITY)) >= 0;) {
    if (n == 1) {
      send_message(so, counts, sizeof counts);
      counts[0] = counts[1] = 0;
    } else {
      counts[0] += 1;
      counts[1] += (double)n;
    }
  }
  usrsctp_close(so);
  free(buffer);
  return NULL;
}

static void serve(struct sockaddr_in addr, uint16_t udp_port) {
  start_stack(udp_port);
  struct socket *listener = open_socket();
  if (usrsctp_bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("usrsctp_bind");
  if (usrsctp_listen(listener, 16) < 0) die("usrsctp_listen");
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    struct socket *so = usrsctp_accept(listener, NULL, NULL);
    pthread_t thread;
    if (!so) die("usrsctp_accept");
    if (pthread_create(&thread, NULL, serve_association, so) != 0) die("pthread_create");
    pthread_detach(thread);
  }
}

static void batch(struct socket *so, const char *message, size_t size, long count, char *answer) {
  for (long i = 0; i < count; i++) send_message(so, message, size);
  send_message(so, "!", 1);
  if (receive_message(so, answer, RECEIVE_CAPACITY) != 16) die("acknowledgement");
  double counts[2];
  memcpy(counts, answer, sizeof counts);
  if (counts[0] != (double)count || counts[1] != (double)count * (double)size) {
    fprintf(stderr, "oneway_usrsctp: server saw %.0f messages / %.0f bytes, sent %ld of %zu\n",
            counts[0], counts[1], count, size);
    exit(1);
  }
}

static void client(struct sockaddr_in addr, uint16_t udp_port, size_t size, long count) {
  start_stack(0);
  struct socket *so = open_socket();
  /* Where the server's stack listens; the address family only marks "every address". */
  struct sctp_udpencaps encaps = {.sue_port = htons(udp_port)};
  encaps.sue_address.ss_family = AF_INET6;
  set_option(so, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT, &encaps, sizeof encaps,
             "SCTP_REMOTE_UDP_ENCAPS_PORT");
  if (usrsctp_connect(so, (struct sockaddr *)&addr, sizeof addr) < 0) die("usrsctp_connect");
  char *message = calloc(1, size), *answer = malloc(RECEIVE_CAPACITY);
  if (!message || !answer) die("malloc");
  batch(so, message, size, count / 10 + 1, answer);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  batch(so, message, size, count, answer);
  clock_gettime(CLOCK_MONOTONIC, &end);
  printf("%.6f\n", (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
  fflush(stdout);
  /*
   * Closing starts SCTP's SHUTDOWN on the stack's threads, which exit would
   * cut short; usrsctp_finish succeeds once the association is gone (a
   * bounded wait: the measurement is printed already).
   */
  usrsctp_close(so);
  for (int i = 0; i < 200 && usrsctp_finish() != 0; i++) usleep(10000);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: oneway_usrsctp server HOST PORT UDPPORT [SACKFREQ SACKDELAY]\n"
            "       oneway_usrsctp client HOST PORT UDPPORT SIZE COUNT [PATHMTU [SACKFREQ "
            "SACKDELAY]]\n");
    return 2;
  }
  struct sockaddr_in addr = address(argv[2], argv[3]);
  uint16_t udp_port = (uint16_t)atoi(argv[4]);
  int server = strcmp(argv[1], "server") == 0;
  /* The SACK settings follow the role's other arguments. */
  int sack_at = server ? 5 : 8;
  if (argc > sack_at + 1) {
    sack_freq = (uint32_t)atol(argv[sack_at]);
    sack_delay = (uint32_t)atol(argv[sack_at + 1]);
  }
  if (server) serve(addr, udp_port);
  if (strcmp(argv[1], "client") != 0 || argc < 7) return 2;
  if (argc > 7) path_mtu = (uint32_t)atol(argv[7]);
  client(addr, udp_port, (size_t)atol(argv[5]), atol(argv[6]));
  return 0;
}
