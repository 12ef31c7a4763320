// Sign in and sign up.
import { api, session } from '../api.js';
import { h, uid } from '../dom.js';

function field({ label, type = 'text', name, autocomplete, attrs = {}, hint = '' }) {
  const id = uid(name);
  const hintId = hint ? `${id}-hint` : null;
  const input = h('input', { id, name, type, class: 'input', autocomplete, 'aria-describedby': hintId, ...attrs });
  return {
    input,
    el: h('div', { class: 'field' },
      h('label', { for: id, class: 'field-label' }, label),
      input,
      hint ? h('p', { id: hintId, class: 'field-hint muted' }, hint) : null),
  };
}

function safeNext(query) {
  const next = query.get('next') || '#/';
  // Only ever go back into the app itself.
  return next.startsWith('#/') && !next.startsWith('#/login') && !next.startsWith('#/signup') ? next : '#/';
}

function logo() {
  return h('h1', { class: 'auth-logo wordmark' }, 'photostream');
}

function authShell(card, alt) {
  return h('div', { class: 'auth-page' },
    h('div', { class: 'auth-hero', 'aria-hidden': 'true' },
      h('div', { class: 'hero-tiles' }, ...[0, 1, 2, 3, 4, 5].map((i) => h('span', { class: `hero-tile t${i}` })))),
    h('div', { class: 'auth-column' }, card, alt));
}

function submitting(button, busy, label) {
  button.disabled = busy;
  button.textContent = busy ? label : button.dataset.label;
}

export async function loginView(root, { query }) {
  document.title = 'Sign in • photostream';
  const username = field({ label: 'Username', name: 'username', autocomplete: 'username', attrs: { required: true, autocapitalize: 'none', spellcheck: 'false', maxlength: '30' } });
  const password = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', attrs: { required: true, maxlength: '128' } });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-block', dataset: { label: 'Sign in' } }, 'Sign in');
  const form = h('form', { class: 'auth-form', novalidate: true, 'aria-label': 'Sign in' },
    username.el, password.el, button, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const name = username.input.value.trim().toLowerCase();
    const pass = password.input.value;
    if (!name || !pass) {
      error.textContent = 'Enter your username and password.';
      (name ? password : username).input.focus();
      return;
    }
    submitting(button, true, 'Signing in…');
    try {
      const data = await api('/v1/sessions', { method: 'POST', body: { username: name, password: pass } });
      session.start(data.token, data.account);
      location.hash = safeNext(query);
    } catch (err) {
      error.textContent = err.status === 401 ? 'Wrong username or password. Please check and try again.' : err.message;
      password.input.select();
      submitting(button, false);
    }
  });
  const card = h('section', { class: 'auth-card' },
    logo(),
    h('p', { class: 'auth-tagline muted' }, 'Share photos with the people you follow.'),
    form);
  const alt = h('p', { class: 'auth-card auth-alt' }, "Don't have an account? ",
    h('a', { href: `#/signup${query.get('next') ? `?next=${encodeURIComponent(query.get('next'))}` : ''}`, class: 'accent strong' }, 'Sign up'));
  root.append(authShell(card, alt));
  username.input.focus();
}

export async function signupView(root, { query }) {
  document.title = 'Sign up • photostream';
  const username = field({
    label: 'Username', name: 'username', autocomplete: 'username',
    hint: '1–30 characters: lowercase letters, numbers, . and _',
    attrs: { required: true, autocapitalize: 'none', spellcheck: 'false', maxlength: '30', pattern: '[a-z0-9._]{1,30}' },
  });
  const display = field({ label: 'Full name (optional)', name: 'display_name', autocomplete: 'name', attrs: { maxlength: '64' } });
  const password = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'new-password', hint: 'At least 8 characters', attrs: { required: true, minlength: '8', maxlength: '128' } });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-block', dataset: { label: 'Sign up' } }, 'Sign up');
  username.input.addEventListener('input', () => {
    const cleaned = username.input.value.toLowerCase().replace(/\s+/g, '_');
    if (cleaned !== username.input.value) username.input.value = cleaned;
  });
  const form = h('form', { class: 'auth-form', novalidate: true, 'aria-label': 'Sign up' },
    username.el, display.el, password.el, button, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const name = username.input.value.trim().toLowerCase();
    const pass = password.input.value;
    if (!/^[a-z0-9._]{1,30}$/.test(name)) {
      error.textContent = 'Usernames use 1 to 30 lowercase letters, numbers, dots and underscores.';
      username.input.focus();
      return;
    }
    if (pass.length < 8) {
      error.textContent = 'Passwords need at least 8 characters.';
      password.input.focus();
      return;
    }
    submitting(button, true, 'Creating your account…');
    try {
      const body = { username: name, password: pass };
      const displayName = display.input.value.trim();
      if (displayName) body.display_name = displayName;
      const data = await api('/v1/accounts', { method: 'POST', body });
      session.start(data.token, data.account);
      location.hash = safeNext(query);
    } catch (err) {
      error.textContent = err.status === 409 ? `The username "${name}" is taken. Try another one.` : err.message;
      (err.status === 409 ? username : password).input.focus();
      submitting(button, false);
    }
  });
  const card = h('section', { class: 'auth-card' },
    logo(),
    h('p', { class: 'auth-tagline muted' }, 'Sign up to see photos from your friends.'),
    form);
  const alt = h('p', { class: 'auth-card auth-alt' }, 'Have an account? ',
    h('a', { href: `#/login${query.get('next') ? `?next=${encodeURIComponent(query.get('next'))}` : ''}`, class: 'accent strong' }, 'Sign in'));
  root.append(authShell(card, alt));
  username.input.focus();
}
