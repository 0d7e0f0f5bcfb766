// Rooms the user enters and leaves: creating, joining, leaving, DMs (made by their first
// message), and the server's `joined` / `left` notices.

import * as api from "./api.js";
import { $ } from "./dom.js";
import { catchUp } from "./history.js";
import { readFields } from "./reading.js";
import { roomGone } from "./room-header.js";
import { LOBBY, dmRoomId, kindOf } from "./store.js";

export function unknownRoom(chat, message, mine) {
  if (message.room.startsWith("dm:")) {
    const name = mine ? "…" : message.from.name; // mine: sent from another tab
    const room = chat.addRoom({ id: message.room, name, private: true });
    if (mine) peerOf(chat, room).then((peer) => chat.setRoomName(room, peer.name));
    chat.sidebar.render();
    return room;
  }
  const room = chat.addRoom({ id: message.room, name: message.room, private: false });
  refreshRoomInfo(chat, room.id);
  return room;
}

/** The rooms of a `session` (each connect): new ones added, known ones updated, the rest
 * dropped (left, kicked or banned meanwhile) but for a DM not written in yet. */
export function fromSession(chat, infos) {
  const listed = new Set();
  for (const info of infos) {
    listed.add(info.id);
    const room = chat.rooms.get(info.id);
    if (!room) {
      chat.addRoom(info);
      continue;
    }
    if (info.name) chat.setRoomName(room, info.name);
    room.setInfo(info); // role, managed, member_limit: as they are now
    if (Number.isInteger(info.unread)) {
      readFields(room, info); // the server counts: the same on every device
      if (!room.keeps) room.top = Math.max(room.top, info.last_seq);
    } else if (!room.keeps && info.last_seq > room.top) {
      room.unread += info.last_seq - room.top;
      room.top = info.last_seq;
    }
  }
  for (const room of [...chat.rooms.values()]) {
    if (!listed.has(room.id) && !(room.draft && !room.seqs.length)) chat.rooms.delete(room.id);
  }
}

export async function refreshRoomInfo(chat, roomId) {
  try {
    const info = (await api.listRooms()).rooms.find((r) => r.id === roomId);
    const room = chat.rooms.get(roomId);
    if (info && room) {
      room.private = info.private;
      room.kind = kindOf(room.id, info.private);
      room.name = info.name || room.name;
      room.setInfo(info);
      if (chat.current === roomId) chat.renderHeader(room);
      chat.sidebar.render();
    }
  } catch {
    /* keep the id as its name */
  }
}

/** `room_updated`: the owner changed the room's settings (managed, member limit). */
export function onUpdated(chat, { room: info }) {
  const room = chat.rooms.get(info.id);
  if (!room) return;
  room.private = info.private;
  room.kind = kindOf(room.id, info.private);
  room.setInfo(info); // no role in it: each member's own is kept
  if (chat.current === room.id) chat.renderHeader(room);
  chat.sidebar.render();
}

export function startDm(chat, userId, name) {
  const id = dmRoomId(chat.me.id, userId);
  if (!chat.rooms.has(id)) {
    const room = chat.addRoom({ id, name, private: true, last_seq: 0 });
    room.draft = true; // exists on the server from its first message on
  }
  chat.select(id);
  chat.sidebar.closeDrawers();
  $("composer-input").focus();
}

export async function peerOf(chat, room) {
  const id = room.peer(chat.me.id);
  try {
    const { user } = await api.userById(id);
    chat.learnName(user.id, user.name);
    return user;
  } catch {
    return { id, name: chat.nameOf(id, id), online: false };
  }
}

export async function create(chat, spec) {
  const { room: info } = await api.createRoom(spec);
  if (!chat.rooms.has(info.id)) chat.addRoom(info);
  chat.sidebar.render();
  chat.select(info.id);
}

export async function join(chat, roomId) {
  const ack = await chat.connection.call("join", { room: roomId });
  if (!chat.rooms.has(ack.room.id)) chat.addRoom(ack.room);
  chat.sidebar.render();
  chat.select(ack.room.id);
}

export async function leave(chat) {
  const room = chat.rooms.get(chat.current);
  if (!room || (room.kind !== "public" && room.kind !== "private")) return;
  try {
    await chat.connection.call("leave", { room: room.id });
    removeRoom(chat, room.id);
  } catch (error) {
    $("send-error").textContent = error.message;
  }
}

export function removeRoom(chat, roomId) {
  chat.rooms.delete(roomId);
  if (chat.current === roomId) chat.select(LOBBY);
  chat.sidebar.render();
}

export function onJoined(chat, notice) {
  const { room: roomId, user } = notice;
  chat.learnName(user.id, user.name);
  if (user.id !== chat.me.id) {
    chat.members.joined(roomId, user);
    return;
  }
  const room = chat.rooms.get(roomId);
  // The user's own copy carries last_seq (and, from issue 16's server, the read fields).
  if (!room) {
    chat.addRoom({ ...notice, id: roomId, name: roomId, private: false });
    chat.sidebar.render();
    refreshRoomInfo(chat, roomId);
  } else if (room.status === "loaded") {
    readFields(room, notice);
    // Created or joined elsewhere after this page loaded it: the socket receives the room
    // live only from now on, so ask for anything between the page and that point.
    catchUp(chat, [room]);
  }
}

export function onLeft(chat, { room: roomId, user }) {
  if (user.id !== chat.me.id) {
    chat.learnName(user.id, user.name); // a deleted account leaves as "Deleted user"
    chat.members.left(roomId, user);
    return;
  }
  const room = chat.rooms.get(roomId);
  const why = chat.removedWhy.get(roomId);
  chat.removedWhy.delete(roomId);
  if (!room) return; // left from this page: gone already
  const shown = chat.current === roomId;
  removeRoom(chat, roomId);
  // Removed by a moderator (or left on another device): say so rather than vanish.
  if (why || shown) roomGone(room.name, why);
}
