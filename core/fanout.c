#include "fanout.h"

#include "log.h"

nb_buf *fanout_frame(nb_server *srv, uint32_t c, const nb_msg *msg) {
    nb_codec_slot *slot = &srv->codecs[c];
    nb_buf *payload = NULL;
    if (slot->vt->encode(slot->ctx.instance, msg, &payload) != NB_OK || !payload) {
        log_error("%s could not encode a message of type %u", slot->plugin.desc.name, msg->type);
        return NULL;
    }
    /* Framing is a pure function of its input (transport.h): any
     * instance will do, whichever thread this is. */
    return srv->tvt->frame(srv->workers[0].transport_ctx.instance, slot->vt->frame_kind, payload);
}
