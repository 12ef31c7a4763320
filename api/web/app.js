// photostream web app: shell, navigation and the hash router.
import { api, session } from './js/api.js';
import { avatar, emptyState, errorState, h, icon, spinner, toast, userHref } from './js/dom.js';
import { live } from './js/live.js';
import { loginView, signupView } from './js/views/auth.js';
import { conversationView, messagesView } from './js/views/messages.js';
import { notificationsView } from './js/views/notifications.js';
import { exploreView, postView, searchView, tagView } from './js/views/discover.js';
import { feedView } from './js/views/feed.js';
import { newPostView } from './js/views/newpost.js';
import { opsView } from './js/views/ops.js';
import { followsView, profileView } from './js/views/profile.js';
import { requestsView } from './js/views/requests.js';
import { settingsView } from './js/views/settings.js';

const decode = (s) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

// [name, pattern, view, options]
const ROUTES = [
  ['feed', /^\/$/, feedView, { auth: true, nav: 'home' }],
  ['login', /^\/login$/, loginView, { guest: true, bare: true }],
  ['signup', /^\/signup$/, signupView, { guest: true, bare: true }],
  ['follows', /^\/u\/([^/]+)\/(followers|following)$/, followsView, {}],
  ['profile', /^\/u\/([^/]+)$/, profileView, {}],
  ['post', /^\/p\/([^/]+)$/, postView, {}],
  ['tag', /^\/tags\/([^/]+)$/, tagView, { nav: 'explore' }],
  ['explore', /^\/explore$/, exploreView, { nav: 'explore' }],
  ['search', /^\/search$/, searchView, { nav: 'search' }],
  ['new', /^\/new$/, newPostView, { auth: true, nav: 'create' }],
  ['settings', /^\/settings$/, settingsView, { auth: true, nav: 'settings' }],
  ['requests', /^\/requests$/, requestsView, { auth: true, nav: 'settings' }],
  ['notifications', /^\/notifications$/, notificationsView, { auth: true, nav: 'notifications' }],
  ['messages', /^\/messages$/, messagesView, { auth: true, nav: 'messages' }],
  ['conversation', /^\/messages\/([0-9]+-[0-9]+)$/, conversationView, { auth: true, nav: 'messages' }],
  ['ops', /^\/ops$/, opsView, {}], // operators: events/s and projection lag
];

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(qs) };
}

// ---------------------------------------------------------------- shell

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const topbar = document.getElementById('topbar');

function navItem(key, href, label, iconName, { cls = '', hidden = false } = {}) {
  return h('a', { class: `nav-item ${cls}`, href, dataset: { nav: key }, hidden },
    h('span', { class: 'nav-icon' }, icon(iconName, { size: 26 })),
    h('span', { class: 'nav-label' }, label));
}

function signOut() {
  session.clear();
  toast('You have signed out.');
  location.hash = '#/login';
}

function renderNav() {
  const me = session.me;
  const items = [h('a', { class: 'nav-logo', href: '#/', 'aria-label': 'photostream home' },
    h('span', { class: 'wordmark' }, 'photostream'),
    h('img', { class: 'logo-mark', src: '/web/icon.svg', alt: '', width: '28', height: '28' }))];
  if (session.signedIn) {
    const profile = h('a', { class: 'nav-item', href: userHref(me?.username || ''), dataset: { nav: 'profile' } },
      h('span', { class: 'nav-icon' }, avatar(me, 26)),
      h('span', { class: 'nav-label' }, 'Profile'));
    items.push(
      navItem('home', '#/', 'Home', 'home'),
      navItem('search', '#/search', 'Search', 'search'),
      navItem('explore', '#/explore', 'Explore', 'explore'),
      // Places kept for the live features (WebSocket /v1/stream): shown when built.
      navItem('messages', '#/messages', 'Messages', 'message', { cls: 'slot-messages', hidden: true }),
      navItem('notifications', '#/notifications', 'Notifications', 'heart', { cls: 'slot-notifications', hidden: true }),
      navItem('create', '#/new', 'Create', 'create'),
      profile,
      h('span', { class: 'nav-spacer' }),
      navItem('settings', '#/settings', 'Settings', 'settings', { cls: 'desktop-only' }),
      h('button', { type: 'button', class: 'nav-item desktop-only', onclick: signOut },
        h('span', { class: 'nav-icon' }, icon('logout', { size: 26 })),
        h('span', { class: 'nav-label' }, 'Log out')));
  } else {
    items.push(
      navItem('explore', '#/explore', 'Explore', 'explore'),
      navItem('search', '#/search', 'Search', 'search'),
      navItem('login', '#/login', 'Sign in', 'user'),
      navItem('signup', '#/signup', 'Sign up', 'create'));
  }
  nav.replaceChildren(...items);

  const actions = h('div', { class: 'topbar-actions' },
    // Slots for notifications and messages on phones (hidden until built).
    h('a', { class: 'icon-btn slot-notifications', href: '#/notifications', 'aria-label': 'Notifications', hidden: true }, icon('heart')),
    h('a', { class: 'icon-btn slot-messages', href: '#/messages', 'aria-label': 'Messages', hidden: true }, icon('message')),
    session.signedIn
      ? h('a', { class: 'icon-btn', href: '#/settings', 'aria-label': 'Settings' }, icon('settings'))
      : h('a', { class: 'btn btn-primary btn-sm', href: '#/login' }, 'Sign in'));
  topbar.replaceChildren(h('a', { class: 'wordmark topbar-logo', href: '#/', 'aria-label': 'photostream home' }, 'photostream'), actions);
  markActive();
  live.paint(); // the notification and message slots, with their unread badges
}

let activeNav = null;
function markActive() {
  for (const el of nav.querySelectorAll('[data-nav]')) {
    const on = el.dataset.nav === activeNav;
    el.classList.toggle('active', on);
    if (on) el.setAttribute('aria-current', 'page');
    else el.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------- router

let current = null;
let firstRender = true;

async function route() {
  const { path, query } = parseHash();
  let match = null;
  let params = [];
  for (const r of ROUTES) {
    const m = path.match(r[1]);
    if (m) {
      match = r;
      params = m.slice(1).map(decode);
      break;
    }
  }
  const [name, , view, opts] = match || ['notfound', null, null, {}];
  if (opts.auth && !session.signedIn) {
    location.replace(`#/login${path === '/' ? '' : `?next=${encodeURIComponent(location.hash)}`}`);
    return;
  }
  if (opts.guest && session.signedIn) {
    const next = query.get('next') || '#/';
    location.replace(next.startsWith('#/') && !/^#\/(login|signup)/.test(next) ? next : '#/');
    return;
  }

  current?.abort();
  const ctrl = new AbortController();
  current = ctrl;

  document.body.dataset.route = name;
  document.body.classList.toggle('bare', Boolean(opts.bare));
  activeNav = opts.nav || (name === 'profile' && session.isMe(params[0]) ? 'profile' : null);
  markActive();

  const root = h('div', { class: `view view-${name}` });
  const spin = spinner();
  root.append(spin);
  const watcher = new MutationObserver(() => {
    if (root.childElementCount > 1) {
      spin.remove();
      watcher.disconnect();
    }
  });
  watcher.observe(root, { childList: true });
  main.replaceChildren(root);
  window.scrollTo(0, 0);
  if (!firstRender) main.focus({ preventScroll: true });
  firstRender = false;

  if (!view) {
    document.title = 'Page not found • photostream';
    root.append(emptyState({
      iconName: 'explore',
      title: "Sorry, this page isn't available.",
      text: 'The link you followed may be broken, or the page may have been removed.',
      action: h('a', { class: 'btn btn-primary', href: '#/' }, 'Go back to photostream'),
    }));
    return;
  }
  try {
    await view(root, { params, query, signal: ctrl.signal, signOut });
  } catch (err) {
    if (ctrl.signal.aborted || err?.name === 'AbortError') return;
    if (err?.status === 401) return; // the api layer already went to sign-in
    root.replaceChildren(errorState(err, () => route()));
  } finally {
    if (!ctrl.signal.aborted) {
      spin.remove();
      watcher.disconnect();
    }
  }
}

// ---------------------------------------------------------------- start

session.onChange(() => {
  renderNav();
  if (session.signedIn) live.start();
  else live.stop();
});
// Signed in or out in another tab: start over with that session.
window.addEventListener('storage', (e) => {
  if (e.key === 'photostream.token' && e.newValue !== session.token) location.reload();
});
window.addEventListener('hashchange', route);
document.getElementById('skip')?.addEventListener('click', () => main.focus());

renderNav();
route();
if (session.signedIn) live.start();

if (session.signedIn) {
  api('/v1/accounts/me')
    .then((me) => session.setMe(me))
    .catch(() => { /* a 401 already signs out; others are not fatal */ });
}
