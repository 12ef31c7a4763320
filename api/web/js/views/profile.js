// Profile pages: #/u/<name>, #/u/<name>/followers, #/u/<name>/following.
import { api, lister, session, setRelation } from '../api.js';
import { accountRow, actionSheet, followButton, infiniteList } from '../components.js';
import { avatar, emptyState, formatCount, h, icon, richText, toast, userHref } from '../dom.js';
import { gridItem } from '../post.js';
import { suggestionsSection } from './discover.js';

function notFound(username) {
  return emptyState({
    iconName: 'user',
    title: "Sorry, this page isn't available.",
    text: `There is no account called "${username}". It may have been renamed or removed.`,
    action: h('a', { class: 'btn btn-primary', href: '#/' }, 'Go back to photostream'),
  });
}

export async function profileView(root, { params, signal }) {
  const username = params[0];
  let account;
  try {
    account = await api(`/v1/accounts/${encodeURIComponent(username)}`, { signal });
  } catch (err) {
    if (err.status === 404) {
      document.title = 'Page not found • photostream';
      root.append(notFound(username));
      return;
    }
    throw err;
  }
  const isMe = session.isMe(account.username);
  if (isMe) session.setMe({ ...session.me, ...account });
  document.title = `${account.display_name || account.username} (@${account.username}) • photostream`;

  const followers = h('span', { class: 'count' }, formatCount(account.followers_count || 0));
  let followersCount = Number(account.followers_count) || 0;
  const countItem = (value, label, href) => {
    const inner = [h('strong', null, value), ' ', label];
    return h('li', null, href ? h('a', { href }, ...inner) : h('span', null, ...inner));
  };
  const followersLabel = h('span', null, followersCount === 1 ? 'follower' : 'followers');

  let actions;
  if (isMe) {
    actions = h('div', { class: 'profile-actions' },
      h('a', { class: 'btn btn-secondary', href: '#/settings' }, 'Edit profile'),
      account.private ? h('a', { class: 'btn btn-secondary', href: '#/requests' }, 'Follow requests') : null,
      h('a', { class: 'btn btn-secondary', href: '#/new' }, 'New post'));
  } else if (account.blocking) {
    const unblock = h('button', { type: 'button', class: 'btn btn-primary' }, 'Unblock');
    unblock.addEventListener('click', () => relate('block', false));
    actions = h('div', { class: 'profile-actions' }, unblock);
  } else {
    actions = h('div', { class: 'profile-actions' },
      followButton(account, {
        onChange: (delta) => {
          followersCount = Math.max(0, followersCount + delta);
          followers.textContent = formatCount(followersCount);
          followersLabel.textContent = followersCount === 1 ? 'follower' : 'followers';
        },
      }),
      session.signedIn ? h('button', { type: 'button', class: 'icon-btn profile-more', 'aria-label': `More options for ${account.username}`, onclick: openMenu }, icon('more')) : null);
  }

  // Block and mute: a menu on someone else's profile; the page reloads to show the result.
  async function relate(kind, value) {
    try {
      await setRelation(account.username, kind, value);
      toast(`${value ? '' : 'Un'}${kind === 'block' ? (value ? 'Blocked' : 'blocked') : (value ? 'Muted' : 'muted')} ${account.username}`);
      const url = location.hash;
      root.replaceChildren();
      if (location.hash === url) await profileView(root, { params, signal });
    } catch (err) {
      toast(err.message, { error: true });
    }
  }
  function openMenu() {
    actionSheet(`Options for ${account.username}`, [
      { label: 'Block', danger: true, then: [{ label: `Block ${account.username}? They will no longer see your posts, and you will stop following each other.`, danger: true, strong: true, onSelect: () => relate('block', true) }] },
      account.muting
        ? { label: 'Unmute', onSelect: () => relate('mute', false) }
        : { label: 'Mute', onSelect: () => relate('mute', true) },
    ]);
  }

  const base = userHref(account.username);
  const header = h('header', { class: 'profile-head' },
    h('div', { class: 'profile-avatar' }, avatar(account, 150)),
    h('section', { class: 'profile-info' },
      h('div', { class: 'profile-title' },
        h('h1', { class: 'profile-username' }, account.username,
          account.private ? h('span', { class: 'private-badge', title: 'Private account' }, icon('lock', { size: 16, label: 'Private account' })) : null),
        actions),
      h('ul', { class: 'profile-counts' },
        countItem(formatCount(account.posts_count || 0), account.posts_count === 1 ? 'post' : 'posts'),
        h('li', null, h('a', { href: `${base}/followers` }, h('strong', null, followers), ' ', followersLabel)),
        countItem(formatCount(account.following_count || 0), 'following', `${base}/following`)),
      h('div', { class: 'profile-bio' },
        account.display_name ? h('p', { class: 'profile-name strong' }, account.display_name) : null,
        account.bio ? h('p', { class: 'bio-text' }, richText(account.bio)) : null)));

  const tabs = h('nav', { class: 'profile-tabs', 'aria-label': 'Profile sections' },
    h('a', { href: base, class: 'active', 'aria-current': 'page' }, icon('grid', { size: 14 }), ' Posts'));

  const grid = infiniteList({
    fetchPage: lister(`/v1/accounts/${encodeURIComponent(account.username)}/posts`, { limit: 18 }),
    renderItem: gridItem,
    signal,
    listClass: 'grid',
    label: `Posts by ${account.username}`,
    empty: () => (isMe
      ? emptyState({ iconName: 'image', title: 'Share photos', text: 'When you share photos, they will appear on your profile.', action: h('a', { class: 'btn btn-primary', href: '#/new' }, 'Share your first photo') })
      : emptyState({ iconName: 'image', title: 'No posts yet', text: `When ${account.username} shares photos, you'll see them here.` })),
    unavailable: () => emptyState({ iconName: 'image', title: 'No posts to show', text: 'Posts are not available right now.' }),
    forbidden: () => (account.blocking
      ? emptyState({ iconName: 'lock', title: `You blocked ${account.username}`, text: 'Unblock them to see their photos.' })
      : emptyState({ iconName: 'lock', title: 'This account is private', text: `Follow ${account.username} to see their photos.` })),
  });

  const suggested = h('div', { class: 'profile-suggestions' });
  root.append(h('div', { class: 'profile' }, header, suggested, tabs, grid.el));
  // Your own profile suggests people followed by the people you follow.
  if (isMe) suggestionsSection(account.username, { signal }).then((s) => s && suggested.append(s)).catch(() => {});
}

export async function followsView(root, { params, signal }) {
  const [username, which] = params;
  let account = null;
  try {
    account = await api(`/v1/accounts/${encodeURIComponent(username)}`, { signal });
  } catch (err) {
    if (err.status === 404) {
      root.append(notFound(username));
      return;
    }
    throw err;
  }
  const title = which === 'followers' ? 'Followers' : 'Following';
  document.title = `${title} of @${account.username} • photostream`;
  const base = userHref(account.username);
  const head = h('header', { class: 'page-head' },
    h('a', { class: 'icon-btn', href: base, 'aria-label': `Back to ${account.username}` }, icon('back')),
    h('h1', { class: 'page-title' }, account.username));
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Followers and following' },
    h('a', { href: `${base}/followers`, class: which === 'followers' ? 'active' : '', 'aria-current': which === 'followers' ? 'page' : null }, 'Followers'),
    h('a', { href: `${base}/following`, class: which === 'following' ? 'active' : '', 'aria-current': which === 'following' ? 'page' : null }, 'Following'));
  const list = infiniteList({
    fetchPage: lister(`/v1/accounts/${encodeURIComponent(account.username)}/${which}`, { limit: 30 }),
    renderItem: (acc) => accountRow(acc),
    signal,
    listTag: 'ul',
    listClass: 'account-list',
    label: title,
    empty: () => emptyState({
      iconName: 'user',
      title: which === 'followers' ? 'No followers yet' : 'Not following anyone yet',
      text: which === 'followers' ? `People who follow ${account.username} will appear here.` : `People ${account.username} follows will appear here.`,
    }),
    unavailable: () => emptyState({ iconName: 'user', title: `${title} is not available yet` }),
    forbidden: () => emptyState({ iconName: 'lock', title: 'This account is private', text: `Follow ${account.username} to see who they follow and who follows them.` }),
  });
  root.append(h('div', { class: 'narrow-page' }, head, tabs, list.el));
}
