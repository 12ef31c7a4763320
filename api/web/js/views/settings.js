// Edit profile: avatar upload, display name, bio, private account; sign out.
import { api, session, uploadMedia } from '../api.js';
import { avatar, h, toast, uid } from '../dom.js';

export async function settingsView(root, { signal, signOut }) {
  document.title = 'Edit profile • photostream';
  let me = session.me;
  try {
    me = await api('/v1/accounts/me', { signal });
    session.setMe(me);
  } catch (err) {
    if (err.name === 'AbortError' || err.status === 401) return;
    if (!me) throw err;
  }

  let avatarMediaId = null;
  const avatarSlot = h('div', { class: 'settings-avatar' }, avatar(me, 64));
  const fileId = uid('avatar');
  const fileInput = h('input', { id: fileId, type: 'file', accept: 'image/*', class: 'sr-only file-input' });
  const progress = h('progress', { class: 'np-progress', max: '100', value: '0', hidden: true, 'aria-label': 'Profile photo upload' });
  const avatarStatus = h('p', { class: 'small muted', 'aria-live': 'polite' });
  const avatarBox = h('div', { class: 'settings-avatar-row' },
    avatarSlot,
    h('div', null,
      h('p', { class: 'strong' }, me.username),
      fileInput,
      h('label', { for: fileId, class: 'link-btn accent strong' }, 'Change profile photo'),
      progress, avatarStatus));

  const nameId = uid('name');
  const bioId = uid('bio');
  const privId = uid('private');
  const name = h('input', { id: nameId, class: 'input', type: 'text', maxlength: '64', autocomplete: 'name', value: me.display_name || '' });
  const bio = h('textarea', { id: bioId, class: 'input', rows: '4', maxlength: '500' });
  bio.value = me.bio || '';
  const bioCount = h('span', { class: 'small muted' });
  const updateBioCount = () => { bioCount.textContent = `${[...bio.value].length}/500`; };
  bio.addEventListener('input', updateBioCount);
  updateBioCount();
  const priv = h('input', { id: privId, type: 'checkbox', checked: Boolean(me.private) });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');

  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    fileInput.value = '';
    if (!file) return;
    if (file.type && !file.type.startsWith('image/')) {
      avatarStatus.textContent = `“${file.name}” isn't an image.`;
      return;
    }
    const preview = URL.createObjectURL(file);
    avatarSlot.replaceChildren(avatar({ username: me.username, avatar_url: preview }, 64));
    progress.hidden = false;
    progress.value = 0;
    avatarStatus.textContent = 'Uploading…';
    save.disabled = true;
    try {
      const media = await uploadMedia(file, { signal, onProgress: (p) => { progress.value = Math.round(p * 100); } });
      avatarMediaId = media.id;
      avatarStatus.textContent = 'Photo ready. Save to apply it.';
    } catch (err) {
      if (err.name === 'AbortError') return;
      avatarSlot.replaceChildren(avatar(me, 64));
      avatarStatus.textContent = err.message;
    } finally {
      progress.hidden = true;
      save.disabled = false;
    }
  });

  const form = h('form', { class: 'settings-form', novalidate: true },
    avatarBox,
    h('div', { class: 'field' }, h('label', { for: nameId, class: 'field-label' }, 'Name'), name),
    h('div', { class: 'field' },
      h('label', { for: bioId, class: 'field-label' }, 'Bio'), bio,
      h('div', { class: 'row space' }, h('span', { class: 'small muted' }, 'Use #hashtags and @mentions.'), bioCount)),
    h('div', { class: 'field field-check' }, priv,
      h('label', { for: privId }, h('span', { class: 'strong' }, 'Private account'),
        h('span', { class: 'small muted block' }, 'Only people you approve can see your photos. Requests you have not answered stay pending if you go public again.'),
        h('a', { class: 'small link-btn accent block', href: '#/requests' }, 'Follow requests'))),
    error,
    h('div', { class: 'row gap' }, save, h('a', { class: 'btn btn-secondary', href: `#/u/${encodeURIComponent(me.username)}` }, 'Cancel')));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    save.disabled = true;
    save.textContent = 'Saving…';
    const body = { display_name: name.value.trim(), bio: bio.value.trim(), private: priv.checked };
    if (avatarMediaId) body.avatar_media_id = avatarMediaId;
    try {
      const updated = await api('/v1/accounts/me', { method: 'PATCH', body });
      session.setMe({ ...me, ...updated });
      me = session.me;
      avatarMediaId = null;
      toast('Profile saved');
      location.hash = `#/u/${encodeURIComponent(me.username)}`;
    } catch (err) {
      error.textContent = err.message;
    } finally {
      save.disabled = false;
      save.textContent = 'Save';
    }
  });

  const logout = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Log out');
  logout.addEventListener('click', signOut);

  root.append(h('div', { class: 'narrow-page settings' },
    h('h1', { class: 'page-title' }, 'Edit profile'),
    form,
    h('section', { class: 'settings-section' },
      h('h2', { class: 'section-title' }, 'Session'),
      h('p', { class: 'muted small' }, `Signed in as ${me.username}.`),
      logout)));
}
