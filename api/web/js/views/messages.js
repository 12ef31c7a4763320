// Direct messages: the inbox (#/messages) and one conversation (#/messages/<id>),
// which shows messages oldest at the top, takes new ones live and marks them read.
import { api, lister, session } from '../api.js';
import { infiniteList } from '../components.js';
import { avatar, emptyState, h, timeAgo, toast } from '../dom.js';
import { live } from '../live.js';

function conversationRow(c) {
  const last = c.last_message;
  const preview = last ? (last.text || 'Sent a photo') : '';
  return h('li', { class: `conversation-row${c.unread_count ? ' unread' : ''}` },
    h('a', { class: 'account-link', href: `#/messages/${c.id}` },
      avatar(c.with, 44),
      h('span', { class: 'account-names' },
        h('span', { class: 'account-username' }, c.with?.username || ''),
        h('span', { class: 'muted' }, preview, last ? ` · ${timeAgo(last.created_at)}` : '')),
      c.unread_count ? h('span', { class: 'badge' }, String(c.unread_count)) : null));
}

function composer(onSend, placeholder = 'Message…') {
  const input = h('input', { type: 'text', class: 'input', name: 'text', placeholder, maxlength: 2000, autocomplete: 'off', 'aria-label': 'Message' });
  const form = h('form', { class: 'composer' }, input, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Send'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.disabled = true;
    try {
      await onSend(text);
      input.value = '';
    } catch (err) {
      toast(err.message, { error: true });
    } finally {
      input.disabled = false;
      input.focus();
    }
  });
  return form;
}

export async function messagesView(root, { signal }) {
  document.title = 'Messages • photostream';
  const to = h('input', { type: 'text', class: 'input', name: 'to', placeholder: 'Username', autocomplete: 'off', 'aria-label': 'To' });
  const start = composer(async (text) => {
    const sent = await api('/v1/messages', { method: 'POST', body: { to: to.value.trim(), text } });
    location.hash = `#/messages/${sent.conversation_id}`;
  });
  start.prepend(to);
  const conversations = () => infiniteList({
    fetchPage: lister('/v1/conversations', { limit: 20 }),
    renderItem: conversationRow,
    signal,
    listTag: 'ul',
    listClass: 'account-list',
    label: 'Conversations',
    empty: () => emptyState({ iconName: 'message', title: 'Your messages', text: 'Send a private message to someone.' }),
  });
  let list = conversations();
  root.append(h('h1', { class: 'page-title' }, 'Messages'), start, list.el);
  // A new message reorders the inbox: reload the list in place (the form keeps what is typed).
  const off = live.on('message', () => {
    const fresh = conversations();
    list.el.replaceWith(fresh.el);
    list = fresh;
  });
  signal.addEventListener('abort', off);
}

export async function conversationView(root, { params, signal }) {
  const [id] = params;
  const info = await api(`/v1/conversations/${encodeURIComponent(id)}`, { signal });
  document.title = `${info.with?.username || 'Messages'} • photostream`;
  const thread = h('ol', { class: 'thread', 'aria-label': 'Messages' });
  const bubble = (m) => h('li', { class: `bubble${m.sender_id === session.me?.id ? ' mine' : ''}`, dataset: { id: m.id } },
    m.text ? h('span', { class: 'bubble-text' }, m.text) : null,
    ...(m.media || []).map((p) => h('img', { src: p.urls.small, alt: 'A photo', loading: 'lazy' })));
  const add = (m) => {
    if (thread.querySelector(`[data-id="${m.id}"]`)) return;
    thread.append(bubble(m));
    thread.lastElementChild?.scrollIntoView({ block: 'end' });
  };
  const page = await api(`/v1/conversations/${encodeURIComponent(id)}/messages`, { query: { limit: 50 }, signal });
  for (const m of [...page.items].reverse()) add(m);
  const form = composer(async (text) => {
    add(await api('/v1/messages', { method: 'POST', body: { to: info.with.username, text } }));
  });
  root.append(h('h1', { class: 'page-title' }, h('a', { href: '#/messages' }, 'Messages'), ' · ', info.with?.username || ''), thread, form);
  const markRead = () => api(`/v1/conversations/${encodeURIComponent(id)}/read`, { method: 'POST' }).catch(() => {});
  const off = live.on('message', (m) => {
    if (m.conversation_id !== id) return;
    add(m);
    markRead();
  });
  signal.addEventListener('abort', off);
  markRead();
}
