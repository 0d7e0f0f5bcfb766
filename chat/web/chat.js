// The signed-in chat: rooms, messages, members and the connection, glued together.

import * as api from "./api.js";
import { Connection } from "./connection.js";
import { $, listen } from "./dom.js";
import { Drafts } from "./drafts.js";
import { catchUp, loadNewest, loadOlder } from "./history.js";
import * as inbox from "./inbox.js";
import { MembersPanel } from "./members-ui.js";
import * as rooms from "./membership.js";
import { MessageView } from "./messages-ui.js";
import { Notifier } from "./notify.js";
import { Outbox } from "./outbox.js";
import { Blocks, bindPeople } from "./people-ui.js";
import { Reading, readFields } from "./reading.js";
import { clearRoomNotice, renderHeader, toggleDmBlock } from "./room-header.js";
import { mayInvite } from "./roles.js";
import { Sidebar } from "./rooms-ui.js";
import { SessionKeeper } from "./session.js";
import { LOBBY, ReadMarks, Room, rememberRoom, rememberedRoom } from "./store.js";
import { clearPage } from "./teardown.js";
import { Typing } from "./typing.js";

export class Chat {
  /**
   * @param hooks {signedOut(message)}
   * @param expiresIn seconds the access token has left (it is renewed before)
   */
  constructor(me, hooks, expiresIn) {
    this.me = me;
    this.hooks = hooks;
    this.rooms = new Map();
    this.names = new Map();
    this.current = null;
    this.sessions = 0;
    this.removedWhy = new Map(); // room id -> why the user was removed (a moderation entry)
    this.marks = new ReadMarks(me.id);
    this.drafts = new Drafts(me.id);
    this.abort = new AbortController(); // ends every listener on the page's static elements
    const signal = this.abort.signal;
    const chat = this;
    this.connection = new Connection($("conn-status"), {
      session: (session) => this.onSession(session),
      unauthorized: (reason) => this.session.refused(reason),
      serverDisconnect: (ended) =>
        this.loggingOut || this.session.ended(ended) || this.serverDisconnected(),
      state: () => this.view && this.view.renderPending(),
    });
    this.session = new SessionKeeper(expiresIn, {
      reconnect: () => this.connection.reconnect(),
      connect: () => this.connection.connect(),
      connectedAt: () => this.connection.connectedAt,
      signOut: (message) => this.signOut(message),
    });
    this.outbox = new Outbox(this.connection, {
      delivered: (item, message) => this.ingest(message, { live: true }),
      changed: () => this.view.renderPending(),
    });
    this.blocks = new Blocks(
      (event, payload) => chat.connection.call(event, payload),
      () => chat.blocksChanged(),
    );
    const actions = inbox.messageActions(this);
    this.view = new MessageView({
      signal,
      me: () => chat.me,
      connected: () => chat.connection.connected,
      nameOf: (id, fallback) => chat.nameOf(id, fallback),
      pending: (roomId) => chat.outbox.forRoom(roomId),
      nearTop: () => loadOlder(chat, chat.rooms.get(chat.current)),
      send: (text) => chat.send(text),
      typed: () => chat.typing.typed(chat.rooms.get(chat.current)),
      retry: (cid) => chat.outbox.retry(cid),
      discard: (cid) => chat.outbox.discard(cid),
      drafts: this.drafts,
      actions,
      atBottom: () => inbox.seenCurrent(chat),
    });
    this.notifier = new Notifier({ signal, userId: me.id, open: (id) => chat.select(id) });
    this.typing = new Typing(this);
    this.sidebar = new Sidebar({
      signal,
      rooms: () => chat.rooms,
      current: () => chat.current,
      me: () => chat.me,
      select: (id) => chat.select(id),
      create: (spec) => rooms.create(chat, spec),
      join: (id) => rooms.join(chat, id),
      publicRooms: async () => (await api.listRooms()).rooms,
      rename: (name) => chat.rename(name),
      logout: () => chat.logout(),
    });
    this.members = new MembersPanel({
      signal,
      me: () => chat.me,
      connected: () => chat.connection.connected,
      call: (event, payload) => chat.connection.call(event, payload),
      nameOf: (id, fallback) => chat.nameOf(id, fallback),
      learnName: (id, name) => chat.learnName(id, name),
      startDm: (id, name) => rooms.startDm(chat, id, name),
      privateRooms: () => [...chat.rooms.values()].filter(mayInvite),
      invite: (roomId, userId) => chat.connection.call("invite", { room: roomId, user: userId }),
      peerOf: (room) => rooms.peerOf(chat, room),
      menu: (room, member) => chat.menu.open(room, member),
    });
    this.menu = bindPeople(this, signal, actions.moderate);
    this.reading = new Reading(this);
    this.sidebar.showMe(me);
    listen(signal, document, "visibilitychange", () => inbox.seenCurrent(chat));
    listen(signal, $("leave-room"), "click", () => rooms.leave(this));
    listen(signal, $("dm-block"), "click", () => toggleDmBlock(this));
    const on = (event, handler) => this.connection.on(event, handler);
    on("message", (message) => this.ingest(message, { live: true }));
    on("joined", (notice) => rooms.onJoined(this, notice));
    on("left", (notice) => rooms.onLeft(this, notice));
    on("room_updated", (notice) => rooms.onUpdated(this, notice));
    on("presence", (notice) => this.members.presence(notice.user, notice.online));
    on("user", (user) => this.learnName(user.id, user.name));
    on("typing", (notice) => this.typing.received(notice));
    on("read", (notice) => this.reading.moved(notice));
    on("receipt", (notice) => this.reading.receipt(notice));
    on("settings", (settings) => this.reading.settings(settings));
  }

  // --- session --------------------------------------------------------------------------------

  onSession(session) {
    this.session.connected();
    this.me = session.user;
    this.learnName(this.me.id, this.me.name);
    const first = this.sessions++ === 0;
    this.reading.settings(session.settings);
    this.reading.supported ||= session.rooms.some((info) => Number.isInteger(info.read_seq));
    rooms.fromSession(this, session.rooms);
    const wanted = first ? rememberedRoom(this.me.id) : this.current;
    const target = this.rooms.has(wanted) ? wanted : LOBBY;
    if (first || target !== this.current) {
      this.select(target);
    } else {
      const room = this.rooms.get(this.current);
      if (room.status === "idle") loadNewest(this, room);
      this.members.load(room, { reconnected: true });
      this.markRead(room); // the server's count of the shown room is no badge
    }
    if (!first) catchUp(this); // what the loaded rooms missed while disconnected
    this.blocks.load();
    this.sidebar.render();
    this.updateTitle();
    this.outbox.pump();
    this.view.renderPending();
  }

  addRoom(info) {
    const room = new Room(info);
    readFields(room, info); // counted by the server, when it counts
    // A room learnt from a live message (a new DM) has no fields yet; its position is 0.
    if (this.reading.supported && !room.serverRead) readFields(room, { read_seq: 0 });
    const mark = this.marks.get(room.id);
    if (room.serverRead) {
      // nothing to count here
    } else if (mark === null) {
      this.marks.set(room.id, room.top);
    } else {
      room.unread = Math.max(0, room.top - mark);
    }
    this.rooms.set(room.id, room);
    return room;
  }

  // --- messages -------------------------------------------------------------------------------

  /** A message from the server (live event, ack, sync or history after). */
  ingest(message, options) {
    inbox.ingest(this, message, options);
  }

  markRead(room) {
    inbox.markRead(this, room);
  }

  send(text) {
    const room = this.rooms.get(this.current);
    if (!room) return;
    $("send-error").textContent = "";
    this.outbox.add(room.id, text, room.kind === "dm" ? room.peer(this.me.id) : null);
  }

  // --- rooms ----------------------------------------------------------------------------------

  select(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    const changed = this.current !== roomId;
    this.current = roomId;
    rememberRoom(this.me.id, roomId);
    if (changed) clearRoomNotice();
    this.renderHeader(room);
    if (changed) this.typing.render();
    // Opened where the user stopped reading (the server's position), when others wrote since.
    room.dividerAt = room.serverRead && room.unread > 0 ? room.readSeq : null;
    this.view.show(room);
    this.members.load(room);
    this.markRead(room);
    if (room.status === "idle") loadNewest(this, room);
  }

  renderHeader(room) {
    renderHeader(this, room);
  }

  /** The user's role in `room` changed: what the header, rows and menus offer follows. */
  roleChanged(room) {
    if (room.id !== this.current) return;
    this.renderHeader(room);
    this.view.show(room); // "Delete" on others' messages comes and goes with the role
    this.menu.render();
  }

  blocksChanged() {
    const room = this.rooms.get(this.current);
    if (room) this.renderHeader(room);
    this.menu.render();
  }

  setRoomName(room, name) {
    if (!name || room.name === name) return;
    room.name = name;
    if (room.id === this.current) this.renderHeader(room);
    this.sidebar.render();
  }

  // --- names ----------------------------------------------------------------------------------

  nameOf(id, fallback) {
    return this.names.get(id) ?? fallback;
  }

  learnName(id, name) {
    if (!name || this.names.get(id) === name) return;
    this.names.set(id, name);
    this.view.renameUser(id, name);
    this.members.renamed(id, name);
    this.typing.renamed(id, name);
    if (id === this.me.id) {
      this.me = { ...this.me, name };
      this.sidebar.showMe(this.me);
    }
    for (const room of this.rooms.values()) {
      if (room.kind === "dm" && room.peer(this.me.id) === id) this.setRoomName(room, name);
    }
  }

  async rename(name) {
    const ack = await this.connection.call("rename", { name });
    this.learnName(ack.user.id, ack.user.name);
  }

  updateTitle() {
    let unread = 0;
    for (const room of this.rooms.values()) unread += room.unread;
    document.title = unread ? `(${unread}) Chat` : "Chat";
  }

  // --- signing out ----------------------------------------------------------------------------

  async serverDisconnected() {
    if (this.loggingOut) return;
    try {
      await api.me(); // still valid (or renewed): the server dropped us for another reason
      this.connection.connect();
    } catch {
      /* 401 went to the unauthorized handler */
    }
  }

  async logout() {
    this.loggingOut = true;
    this.drafts.clear();
    try {
      await api.logout();
    } catch {
      /* signed out already */
    }
    this.signOut("");
  }

  signOut(message) {
    this.destroy();
    this.hooks.signedOut(message);
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.session.stop();
    this.outbox.clear();
    this.typing.clear();
    this.connection.close();
    this.abort.abort();
    clearPage(); // the next person at this browser must see nothing of this one
  }
}
