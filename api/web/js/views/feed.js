// Home feed: posts by the people you follow, newest first, endless.
import { api, following, lister, session } from '../api.js';
import { accountRow, infiniteList } from '../components.js';
import { avatar, emptyState, h, userHref } from '../dom.js';
import { postCard } from '../post.js';
import { suggestionsSection } from './discover.js';

/** Up to `max` authors of explore posts the reader does not follow yet: what the empty
 * feed offers someone who follows nobody (who-to-follow is friends of friends, so it
 * has nothing for them). */
// Explore may not exist on an older server: ask once per tab, not on every visit.
const EXPLORE_MISSING = 'photostream.exploreMissing';

async function exploreAuthors(signal, max = 5) {
  if (sessionStorage.getItem(EXPLORE_MISSING)) return [];
  let data;
  try {
    data = await api('/v1/explore', { query: { limit: 30 }, signal });
  } catch (err) {
    if (err.status === 404) sessionStorage.setItem(EXPLORE_MISSING, '1');
    return [];
  }
  let followed = new Set();
  try {
    followed = await following.load();
  } catch {
    /* suggestions are a nicety */
  }
  const out = new Map();
  for (const post of data?.items || []) {
    const a = post.author;
    if (!a || session.isMe(a.username) || followed.has(a.username.toLowerCase())) continue;
    if (!out.has(a.username)) out.set(a.username, a);
    if (out.size >= max) break;
  }
  return [...out.values()];
}

function suggestionsBox(accounts, title = 'Suggested for you', onFollowChange = null) {
  if (!accounts.length) return null;
  return h('section', { class: 'suggestions', 'aria-label': title },
    h('h2', { class: 'rail-title muted' }, title),
    h('ul', { class: 'account-list' }, accounts.map((a) => accountRow(a, { onFollowChange }))));
}

function rerender() {
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export async function feedView(root, { signal }) {
  document.title = 'photostream';
  const me = session.me;
  const column = h('div', { class: 'feed-column' });
  const rail = h('aside', { class: 'feed-rail', 'aria-label': 'Your account and suggestions' });
  const layout = h('div', { class: 'feed-layout' }, column, rail);
  root.append(h('h1', { class: 'sr-only' }, 'Home feed'), layout);
  const railFoot = h('footer', { class: 'rail-foot muted' }, '© photostream');

  if (me) {
    rail.append(h('a', { class: 'rail-me', href: userHref(me.username) },
      avatar(me, 44),
      h('span', { class: 'account-names' },
        h('span', { class: 'account-username' }, me.username),
        h('span', { class: 'muted' }, me.display_name || ''))));
  }
  let first = true;
  const list = infiniteList({
    fetchPage: lister('/v1/feed', { limit: 10 }),
    renderItem: (post) => {
      const card = postCard(post, { mode: 'feed', eager: first });
      first = false;
      return card;
    },
    signal,
    listClass: 'feed',
    label: 'Home feed',
    empty: () => {
      layout.classList.add('is-empty');
      const refresh = h('button', { type: 'button', class: 'btn btn-primary', hidden: true, onclick: rerender }, 'Show my feed');
      const box = h('div', { class: 'feed-empty' },
        emptyState({
          iconName: 'user',
          title: 'Welcome to photostream',
          text: 'When you follow people, their photos show up here.',
          action: h('div', { class: 'row gap center' },
            h('a', { class: 'btn btn-primary', href: '#/explore' }, 'Find people to follow'),
            h('a', { class: 'btn btn-secondary', href: '#/new' }, 'Share a photo')),
        }));
      box.append(h('div', { class: 'row center feed-refresh' }, refresh));
      const onFollowChange = () => { refresh.hidden = false; };
      const peopleToFollow = async () => (me
        && await suggestionsSection(me.username, { signal, max: 8, title: 'People to follow', onFollowChange }))
        || suggestionsBox(await exploreAuthors(signal, 8), 'People to follow', onFollowChange);
      peopleToFollow().then((boxed) => {
        if (boxed && !signal.aborted) box.append(boxed);
      }).catch(() => {});
      return box;
    },
    unavailable: () => emptyState({ iconName: 'home', title: 'Your feed is on its way', text: "The home feed isn't available yet. Explore photos in the meantime.", action: h('a', { class: 'btn btn-primary', href: '#/explore' }, 'Explore') }),
  });
  column.append(list.el);

  rail.append(railFoot);
  // Who to follow: accounts followed by the people the reader follows (the same list as
  // on the search page and their profile).
  if (me) {
    suggestionsSection(me.username, { signal, max: 5 }).then((section) => {
      if (section && !signal.aborted) rail.insertBefore(section, railFoot);
    }).catch(() => {});
  }
}
