// `read-file`: a test guest in JavaScript. Reads the text file at `path` (a
// guest path) and returns its size and first line; a refused or missing
// file fails the run with the host's error code. The language tests run it
// against a read-only mount and outside every mount.
import { defineTool, readFile } from 'airlock-sdk';

export const { run, describe } = defineTool({
  name: 'read-file',
  description: 'Reads a text file and returns its size in bytes and its first line.',
  inputSchema: {
    type: 'object',
    properties: { path: { type: 'string' } },
    required: ['path'],
    additionalProperties: false,
  },
  run({ path }) {
    const bytes = readFile(path);
    const text = new TextDecoder().decode(bytes);
    return { path, bytes: bytes.length, first_line: text.split('\n')[0] };
  },
});
