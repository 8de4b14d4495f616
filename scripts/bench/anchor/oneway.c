/*
 * The C anchor of `deno task bench transports`: the same one-way measurement
 * with the same socket options, without Deno, so the benchmark can print
 * Deno/C measured in the same boot.
 *
 *   oneway server sctp|tcp HOST PORT
 *   oneway client sctp|tcp HOST PORT SIZE COUNT     (prints the seconds)
 *
 * The client sends COUNT messages of SIZE bytes on stream 0, then a 1-byte
 * end marker; the server counts them and answers the marker with 16 bytes
 * (two doubles: messages, bytes). Time runs from the first send until the
 * answer arrives; a warm-up batch goes first. Over TCP a message is framed
 * as a 4-byte big-endian length and the bytes, as in the Deno benchmark.
 * SCTP: one-to-one socket, 8 streams, SCTP_EVENTS data_io, SCTP_NODELAY;
 * both: 4 MiB send and receive buffers, except that SCTP keeps its default
 * receive buffer where 4 MiB would come out smaller (as the transport does).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/sctp.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sctp;

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Sets SO_RCVBUF to `size` (unless 0); returns the size the socket has then. */
static int receive_buffer_after(int fd, int size) {
  socklen_t length = sizeof size;
  if (size > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &length);
  return size;
}

/*
 * Whether asking SCTP for a `size`-byte receive buffer leaves it smaller than
 * the default (the kernel caps requests at 2 x net.core.rmem_max); then the
 * transport (transport/kernel.ts) keeps the default, and so does this.
 */
static int receive_buffer_shrinks(int size) {
  int probe = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  if (probe < 0) die("socket");
  int before = receive_buffer_after(probe, 0);
  int shrinks = receive_buffer_after(probe, size) < before;
  close(probe);
  return shrinks;
}

static void configure(int fd) {
  int one = 1, buffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  if (!sctp || !receive_buffer_shrinks(buffer)) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  }
  if (!sctp) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return;
  }
  struct sctp_initmsg init = {.sinit_num_ostreams = 8, .sinit_max_instreams = 8};
  struct sctp_event_subscribe events = {.sctp_data_io_event = 1};
  if (setsockopt(fd, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init) < 0) die("SCTP_INITMSG");
  if (setsockopt(fd, IPPROTO_SCTP, SCTP_EVENTS, &events, sizeof events) < 0) die("SCTP_EVENTS");
  if (setsockopt(fd, IPPROTO_SCTP, SCTP_NODELAY, &one, sizeof one) < 0) die("SCTP_NODELAY");
}

static void send_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = send(fd, data, length, MSG_NOSIGNAL);
    if (n < 0) die("send");
    data += n;
    length -= (size_t)n;
  }
}

static void send_message(int fd, const char *data, size_t length) {
  if (sctp) {
    if (sctp_sendmsg(fd, data, length, NULL, 0, 0, 0, 0, 0, 0) < 0) die("sctp_sendmsg");
    return;
  }
  /* Header and body in one send, as the Deno benchmark writes a frame. */
  static char *frame;
  static size_t capacity;
  if (capacity < length + 4) {
    frame = realloc(frame, capacity = length + 4);
    if (!frame) die("realloc");
  }
  uint32_t header = htonl((uint32_t)length);
  memcpy(frame, &header, 4);
  memcpy(frame + 4, data, length);
  send_all(fd, frame, length + 4);
}

static int read_all(int fd, char *into, size_t length) {
  while (length > 0) {
    ssize_t n = recv(fd, into, length, MSG_WAITALL);
    if (n <= 0) return -1;
    into += n;
    length -= (size_t)n;
  }
  return 0;
}

/* The next whole message into `buffer` (at least 256 KiB); its length, or -1 at the end. */
static long receive_message(int fd, char *buffer, size_t capacity) {
  if (!sctp) {
    uint32_t header;
    if (read_all(fd, (char *)&header, 4) < 0) return -1;
    size_t length = ntohl(header);
    if (length > capacity || read_all(fd, buffer, length) < 0) return -1;
    return (long)length;
  }
  size_t length = 0;
  for (;;) {
    struct sctp_sndrcvinfo info;
    int flags = 0;
    ssize_t n = sctp_recvmsg(fd, buffer + length, capacity - length, NULL, 0, &info, &flags);
    if (n <= 0) return -1;
    length += (size_t)n;
    if (flags & MSG_EOR) return (long)length;
  }
}

static struct sockaddr_in address(const char *host, const char *port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
  return addr;
}

static void serve(struct sockaddr_in addr) {
  int listener = socket(AF_INET, SOCK_STREAM, sctp ? IPPROTO_SCTP : 0), one = 1;
  if (listener < 0) die("socket");
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  configure(listener);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(listener, 16) < 0) die("listen");
  printf("ready\n");
  fflush(stdout);
  size_t capacity = 1 << 20;
  char *buffer = malloc(capacity);
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) die("accept");
    configure(fd);
    double counts[2] = {0, 0};
    for (long n; (n = receive_message(fd, buffer, capacity)) >= 0;) {
      if (n == 1) {
        send_message(fd, (const char *)counts, sizeof counts);
        counts[0] = counts[1] = 0;
      } else {
        counts[0] += 1;
        counts[1] += (double)n;
      }
    }
    close(fd);
  }
}

static void batch(int fd, const char *message, size_t size, long count, char *answer) {
  for (long i = 0; i < count; i++) send_message(fd, message, size);
  send_message(fd, "!", 1);
  if (receive_message(fd, answer, 1 << 20) != 16) die("acknowledgement");
}

static void client(struct sockaddr_in addr, size_t size, long count) {
  int fd = socket(AF_INET, SOCK_STREAM, sctp ? IPPROTO_SCTP : 0);
  if (fd < 0) die("socket");
  configure(fd);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
  char *message = calloc(1, size), *answer = malloc(1 << 20);
  batch(fd, message, size, count / 10 + 1, answer);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  batch(fd, message, size, count, answer);
  clock_gettime(CLOCK_MONOTONIC, &end);
  printf("%.6f\n", (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
  close(fd);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: oneway server|client sctp|tcp HOST PORT [SIZE COUNT]\n");
    return 2;
  }
  sctp = strcmp(argv[2], "sctp") == 0;
  struct sockaddr_in addr = address(argv[3], argv[4]);
  if (strcmp(argv[1], "server") == 0) serve(addr);
  if (argc < 7) return 2;
  client(addr, (size_t)atol(argv[5]), atol(argv[6]));
  return 0;
}
