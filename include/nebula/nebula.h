/* nebula/nebula.h — include every public ABI header at once. */
#ifndef NEBULA_NEBULA_H
#define NEBULA_NEBULA_H
#include <nebula/broker.h>
#include <nebula/buf.h>
#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <nebula/store.h>
#include <nebula/transport.h>
#endif
