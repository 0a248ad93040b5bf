// The admin site: edits pages with optimistic concurrency (the ETag of the
// revision that was loaded goes back as If-Match, so a save that would
// overwrite someone else's newer revision gets 412 and says so), and
// uploads files with the presigned-URL flow (grant from the API, PUT
// straight to storage, complete through the API). Every API call goes to
// the site's own /api/, where the Pages shim passes it, with the Access
// token Access put on the request, through the service binding.

import { describeFailure } from './common/failure.js';

const $ = (id) => document.getElementById(id);

/** What the editor has loaded: the slug and the ETag of its revision
 * (`null` for a page that does not exist yet). */
let loaded = null;

function show(element, text, isError = false) {
  element.textContent = text;
  element.className = isError ? 'error' : '';
}

/** An API path as the API names it (`/v1/...`), reached through the shim. */
const viaShim = (apiPath) => `/api${apiPath}`;

async function whoami() {
  const response = await fetch(viaShim('/v1/admin/whoami'));
  if (response.ok) {
    const me = await response.json();
    $('whoami').textContent = `signed in as ${me.author}`;
  } else {
    show($('whoami'), await describeFailure(response), true);
  }
}

function showRevision(page) {
  $('revision').textContent = page
    ? `Editing revision ${page.revision} by ${page.author}`
    : 'New page';
}

$('load-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const slug = $('slug').value.trim();
  const response = await fetch(viaShim(`/v1/pages/${encodeURIComponent(slug)}`), {
    cache: 'no-store',
  });
  if (response.status === 404) {
    loaded = { slug, etag: null };
    $('title').value = '';
    $('body').value = '';
    showRevision(null);
  } else if (response.ok) {
    const page = await response.json();
    loaded = { slug, etag: response.headers.get('etag') };
    $('title').value = page.title;
    $('body').value = page.body;
    showRevision(page);
  } else {
    show($('edit-status'), await describeFailure(response), true);
    return;
  }
  $('edit-form').hidden = false;
  show($('edit-status'), '');
});

$('edit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!loaded) return;
  const headers = { 'content-type': 'application/json' };
  if (loaded.etag) {
    headers['if-match'] = loaded.etag;
  } else {
    headers['if-none-match'] = '*';
  }
  const response = await fetch(viaShim(`/v1/pages/${encodeURIComponent(loaded.slug)}`), {
    method: 'PUT',
    headers,
    body: JSON.stringify({ title: $('title').value, body: $('body').value }),
  });
  if (response.ok) {
    const page = await response.json();
    loaded = { slug: loaded.slug, etag: response.headers.get('etag') };
    showRevision(page);
    show($('edit-status'), `Saved revision ${page.revision}.`);
  } else if (response.status === 412) {
    show(
      $('edit-status'),
      'Not saved: someone else saved this page after you loaded it. ' +
        'Copy your text, load the page again to see their version, then apply your change.',
      true,
    );
  } else {
    show($('edit-status'), `Not saved. ${await describeFailure(response)}`, true);
  }
});

$('upload-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  const status = $('upload-status');
  $('uploaded').hidden = true;
  show(status, 'Asking for an upload URL…');
  const granted = await fetch(viaShim('/v1/uploads'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      file_name: file.name,
      content_type: file.type || 'application/octet-stream',
      size_bytes: file.size,
    }),
  });
  if (!granted.ok) {
    show(status, `Not uploaded. ${await describeFailure(granted)}`, true);
    return;
  }
  const grant = await granted.json();

  show(status, 'Sending the file to storage…');
  let stored;
  try {
    stored = await fetch(grant.upload.url, {
      method: grant.upload.method,
      headers: grant.upload.headers,
      body: file,
    });
  } catch (error) {
    show(status, `Not uploaded: storage could not be reached (${error.message}).`, true);
    return;
  }
  if (!stored.ok) {
    show(status, `Not uploaded: storage answered ${stored.status}.`, true);
    return;
  }

  const completed = await fetch(viaShim(grant.complete_url), { method: 'POST' });
  if (!completed.ok) {
    show(status, `Not uploaded. ${await describeFailure(completed)}`, true);
    return;
  }
  const stored_file = await completed.json();
  show(status, `Uploaded ${stored_file.file_name}.`);
  const download = $('download');
  download.href = viaShim(stored_file.download_url);
  download.dataset.fileId = stored_file.id;
  $('file-meta').textContent = `${stored_file.content_type}, ${stored_file.size_bytes} bytes`;
  const preview = $('preview');
  preview.hidden = !stored_file.content_type.startsWith('image/');
  if (!preview.hidden) preview.src = download.href;
  $('uploaded').hidden = false;
});

whoami();
