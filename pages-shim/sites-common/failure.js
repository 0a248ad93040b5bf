// What the sites show when the API refuses or fails a request. Shared by
// every site: each links this directory as `common/` (see ../README.md).

/** A problem document's message, or the status line when there is none. */
export async function describeFailure(response) {
  try {
    const problem = await response.json();
    return `${problem.title ?? response.status}: ${problem.detail ?? ''} (request ${problem.instance ?? '?'})`;
  } catch {
    return `The API answered ${response.status}.`;
  }
}
