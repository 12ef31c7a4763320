// Notifications: likes (grouped per post), comments, follows and mentions, newest
// first; new ones arrive live and go on top. Opening the page marks them read.
import { api, lister } from '../api.js';
import { infiniteList } from '../components.js';
import { avatar, emptyState, h, timeEl, userHref } from '../dom.js';
import { describeNotification, live } from '../live.js';

function notificationRow(n) {
  const who = n.actors[0];
  const link = n.post ? `#/p/${n.post.id}` : userHref(who.username);
  return h('li', { class: `notification${n.read ? '' : ' unread'}`, dataset: { id: n.id, kind: n.kind } },
    h('a', { class: 'notification-who', href: userHref(who.username) }, avatar(who, 44)),
    h('a', { class: 'notification-text', href: link },
      h('span', null, describeNotification(n)), ' ',
      timeEl(n.created_at)),
    n.post?.thumb_url ? h('a', { class: 'notification-thumb', href: link }, h('img', { src: n.post.thumb_url, alt: '', width: 44, height: 44 })) : null);
}

export async function notificationsView(root, { signal }) {
  document.title = 'Notifications • photostream';
  const list = infiniteList({
    fetchPage: lister('/v1/notifications', { limit: 20 }),
    renderItem: notificationRow,
    signal,
    listTag: 'ul',
    listClass: 'notification-list',
    label: 'Notifications',
    empty: () => emptyState({ iconName: 'heart', title: 'Activity on your posts', text: 'When someone likes, comments on or mentions your posts, or follows you, you will see it here.' }),
  });
  root.append(h('h1', { class: 'page-title' }, 'Notifications'), list.el);
  const off = live.on('notification', (n) => {
    list.items.querySelector(`[data-id="${n.id}"]`)?.remove(); // a grouped like, updated
    list.items.prepend(notificationRow(n));
    api('/v1/notifications/read', { method: 'POST' }).catch(() => {});
  });
  signal.addEventListener('abort', off);
  await api('/v1/notifications/read', { method: 'POST' }).catch(() => {});
}
