// The live stream (WebSocket /v1/stream): notifications, messages and new posts as they
// happen, the unread badges, toasts, and a reconnect that resumes from the last id seen.
// Pages listen with live.on('notification' | 'message' | 'post' | 'unread', fn).
import { session } from './api.js';
import { h, toast } from './dom.js';

const LAST_KEY = 'photostream.live.last';
const MAX_BACKOFF = 15000;

function bigger(a, b) {
  if (!a) return b;
  if (!b) return a;
  return BigInt(a) >= BigInt(b) ? a : b;
}

function describe(n) {
  const who = n.actors?.[0]?.username || 'someone';
  const others = Math.max((n.actors_count || 1) - 1, 0);
  const people = others ? `${who} and ${others} ${others === 1 ? 'other' : 'others'}` : who;
  switch (n.kind) {
    case 'like': return `${people} liked your photo.`;
    case 'comment': return `${who} commented: ${n.comment?.text || ''}`;
    case 'follow': return `${who} started following you.`;
    case 'follow_request': return `${who} asked to follow you.`;
    case 'mention': return `${who} mentioned you${n.comment ? ` in a comment: ${n.comment.text}` : ' in a post.'}`;
    default: return `${who} did something.`;
  }
}

class Live {
  constructor() {
    this.ws = null;
    this.listeners = new Map();
    this.counts = { notifications: 0, messages: 0 };
    this.seen = new Set();
    this.backoff = 500;
    this.timer = null;
    this.token = null;
    this.connected = false;
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, data) {
    // A snapshot: a listener that re-renders its page removes itself and adds its
    // successor, and a live Set would hand the same event to that successor, forever.
    for (const fn of [...(this.listeners.get(type) || [])]) {
      try {
        fn(data);
      } catch (err) {
        console.warn('live listener failed', err); // eslint-disable-line no-console
      }
    }
  }

  start() {
    if (!session.signedIn || (this.ws && this.token === session.token)) return;
    this.stop();
    this.token = session.token;
    this.connect();
  }

  stop() {
    clearTimeout(this.timer);
    this.token = null;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.connected = false;
    this.counts = { notifications: 0, messages: 0 };
    this.paint();
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/v1/stream`);
    this.ws = ws;
    ws.onopen = () => {
      const last = sessionStorage.getItem(LAST_KEY);
      ws.send(JSON.stringify({ type: 'auth', token: this.token, last_id: last || null }));
    };
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      this.handle(frame);
    };
    ws.onclose = (ev) => {
      this.connected = false;
      this.ws = null;
      document.body.dataset.live = 'off';
      if (ev.code === 4401 || !session.signedIn) return; // signed out: no reconnecting
      this.timer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF);
    };
  }

  handle(frame) {
    if (frame.type === 'ready') {
      this.connected = true;
      this.backoff = 500;
      document.body.dataset.live = 'on';
      return;
    }
    if (frame.type === 'unread') {
      this.counts = frame.counts;
      this.paint();
      this.emit('unread', this.counts);
      return;
    }
    if (!['notification', 'message', 'post'].includes(frame.type)) return;
    sessionStorage.setItem(LAST_KEY, bigger(sessionStorage.getItem(LAST_KEY), frame.id));
    // A resume starts a little early: show each item once.
    const key = `${frame.type}:${frame.id}:${frame.notification?.actors_count ?? ''}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.emit(frame.type, frame[frame.type]);
    this.notify(frame);
  }

  notify(frame) {
    const route = document.body.dataset.route || '';
    if (frame.type === 'notification' && route !== 'notifications') {
      toast(h('a', { class: 'toast-link', href: '#/notifications' }, describe(frame.notification)));
    } else if (frame.type === 'message' && frame.message.sender_id !== session.me?.id && route !== 'conversation') {
      toast(h('a', { class: 'toast-link', href: `#/messages/${frame.message.conversation_id}` }, `New message: ${frame.message.text || 'a photo'}`));
    }
  }

  paint() {
    for (const [cls, n] of [['slot-notifications', this.counts.notifications], ['slot-messages', this.counts.messages]]) {
      for (const el of document.querySelectorAll(`.${cls}`)) {
        el.hidden = !session.signedIn;
        let badge = el.querySelector('.badge');
        if (!badge) {
          badge = h('span', { class: 'badge', 'aria-label': 'unread' });
          (el.querySelector('.nav-icon') || el).append(badge);
        }
        badge.textContent = n > 99 ? '99+' : String(n);
        badge.hidden = !n;
      }
    }
  }
}

export const live = new Live();
export { describe as describeNotification };
