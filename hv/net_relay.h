/* SPDX-License-Identifier: MIT */
/*
 * The host side of user networking's guest forwards. libslirp connects a
 * guest's connection to a forward's address to a Unix socket; the relay
 * listens on one per forward, in a directory only this user can enter, and
 * joins each connection to the forward's host TCP port, a thread per
 * direction, until both ends have closed.
 */
#ifndef CIRC_HV_NET_RELAY_H
#define CIRC_HV_NET_RELAY_H

#include <stddef.h>

#include "util/err.h"
#include "hv/net_user.h"

struct net_relay;

CIRC_MUST_CHECK int net_relay_start(const struct net_fwd *fwds, size_t n, struct net_relay **out,
                                    struct circ_err *err);
/* The Unix socket that forward i listens on. */
const char *net_relay_path(const struct net_relay *r, size_t i);
/* Stops listening, ends every connection and waits for their threads; NULL is fine. */
void net_relay_stop(struct net_relay *r);

#endif
