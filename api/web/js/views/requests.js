// Follow requests (#/requests): the people asking to follow your private account,
// newest first, each with Confirm and Delete.
import { api, lister } from '../api.js';
import { infiniteList } from '../components.js';
import { avatar, emptyState, h, icon, toast, userHref } from '../dom.js';

function requestRow(account) {
  const status = h('span', { class: 'small muted', 'aria-live': 'polite' });
  const answer = async (verb) => {
    for (const b of buttons) b.disabled = true;
    try {
      await api(`/v1/follow_requests/${encodeURIComponent(account.username)}/${verb}`, { method: 'POST' });
      buttons.forEach((b) => b.remove());
      status.textContent = verb === 'approve' ? 'Now follows you' : 'Request removed';
    } catch (err) {
      for (const b of buttons) b.disabled = false;
      toast(err.message, { error: true });
    }
  };
  const buttons = [
    h('button', { type: 'button', class: 'btn btn-primary btn-sm', onclick: () => answer('approve') }, 'Confirm'),
    h('button', { type: 'button', class: 'btn btn-secondary btn-sm', onclick: () => answer('decline') }, 'Delete'),
  ];
  const name = account.display_name && account.display_name !== account.username ? account.display_name : '';
  return h('li', { class: 'account-row request-row' },
    h('a', { class: 'account-link', href: userHref(account.username) },
      avatar(account, 44),
      h('span', { class: 'account-names' },
        h('span', { class: 'account-username' }, account.username),
        name ? h('span', { class: 'account-display muted' }, name) : null)),
    h('span', { class: 'row gap' }, ...buttons, status));
}

export async function requestsView(root, { signal }) {
  document.title = 'Follow requests • photostream';
  const head = h('header', { class: 'page-head' },
    h('a', { class: 'icon-btn', href: '#/settings', 'aria-label': 'Back to settings' }, icon('back')),
    h('h1', { class: 'page-title' }, 'Follow requests'));
  const list = infiniteList({
    fetchPage: lister('/v1/follow_requests', { limit: 30 }),
    renderItem: requestRow,
    signal,
    listTag: 'ul',
    listClass: 'account-list',
    label: 'Follow requests',
    empty: () => emptyState({ iconName: 'user', title: 'No follow requests', text: 'When your account is private, people who ask to follow you appear here.' }),
  });
  root.append(h('div', { class: 'narrow-page' }, head, list.el));
}
