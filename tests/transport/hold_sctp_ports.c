/*
 * Another process's usrsctp stack on this host, for the usrsctp tests: it
 * opens one association to the server from each of the given local SCTP
 * ports, prints "held", and keeps them until its stdin closes.
 *
 *   hold_sctp_ports HOST PORT UDPPORT OWNUDPPORT LOCALPORT...
 *
 * Its stack runs on UDP port OWNUDPPORT and sends to the server's UDPPORT,
 * as a second client process of the transport would.
 *
 * Build: gcc -O2 -o hold_sctp_ports hold_sctp_ports.c -lusrsctp -lpthread
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <usrsctp.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s HOST PORT UDPPORT OWNUDPPORT LOCALPORT...\n", argv[0]);
    return 2;
  }
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) die("inet_pton");
  struct sctp_udpencaps encaps;
  memset(&encaps, 0, sizeof encaps);
  encaps.sue_address.ss_family = AF_INET6;
  encaps.sue_port = htons(atoi(argv[3]));
  usrsctp_init(atoi(argv[4]), NULL, NULL);
  for (int i = 5; i < argc; i++) {
    struct socket *so = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[i]))};
    if (so == NULL) die("usrsctp_socket");
    if (usrsctp_bind(so, (struct sockaddr *)&local, sizeof local) < 0) die("usrsctp_bind");
    if (usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT, &encaps,
                           sizeof encaps) < 0) {
      die("usrsctp_setsockopt(SCTP_REMOTE_UDP_ENCAPS_PORT)");
    }
    if (usrsctp_connect(so, (struct sockaddr *)&server, sizeof server) < 0) {
      die("usrsctp_connect");
    }
  }
  printf("held\n");
  fflush(stdout);
  char byte;
  while (read(0, &byte, 1) > 0) {
  }
  return 0;
}
