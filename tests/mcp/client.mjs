// A real MCP client (the official TypeScript SDK, @modelcontextprotocol/sdk
// on npm) driven by tests/mcp.rs. Same protocol as client.py:
//
//   node client.mjs CONFIG_JSON
//
// CONFIG_JSON: {"transport": "stdio", "command", "args", "env"} or
// {"transport": "http", "url", "token"?}, plus "steps" (list_tools, call,
// call_and_cancel, list_resources, read_resource), each printing one JSON
// line on stdout.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const emit = (value) => process.stdout.write(JSON.stringify(value) + '\n');

function transport(config) {
  if (config.transport === 'stdio') {
    return new StdioClientTransport({ command: config.command, args: config.args, env: config.env, stderr: 'inherit' });
  }
  const headers = config.token ? { Authorization: `Bearer ${config.token}` } : {};
  return new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers } });
}

function resultJson(op, result) {
  return {
    op,
    isError: Boolean(result.isError),
    text: (result.content ?? []).map((c) => c.text ?? '').join(''),
    structuredContent: result.structuredContent ?? null,
    meta: result._meta ?? {},
  };
}

// Calls can wait for a human's approval: the request timeout restarts with
// each progress notification.
const LONG = { timeout: 120_000, resetTimeoutOnProgress: true };

async function step(client, s, state) {
  const meta = s.meta ? { _meta: s.meta } : {};
  switch (s.op) {
    case 'list_tools': {
      const { tools } = await client.listTools();
      emit({ op: s.op, tools });
      break;
    }
    case 'call': {
      const onprogress = s.progress
        ? (p) => emit({ op: 'progress', progress: p.progress, message: p.message })
        : undefined;
      const result = await client.callTool(
        { name: s.tool, arguments: s.arguments ?? {}, ...meta },
        undefined,
        { ...LONG, onprogress },
      );
      const out = resultJson(s.op, result);
      state.lastRun = out.meta['airlock/run-id'];
      emit(out);
      break;
    }
    case 'call_and_cancel': {
      const abort = new AbortController();
      let run;
      const onprogress = (p) => {
        emit({ op: 'progress', progress: p.progress, message: p.message });
        run = /run ([0-9a-f-]{36})/.exec(p.message)[1];
        abort.abort('the test cancels the call');
      };
      try {
        await client.callTool(
          { name: s.tool, arguments: s.arguments ?? {}, ...meta },
          undefined,
          { ...LONG, onprogress, signal: abort.signal },
        );
        emit({ op: s.op, error: 'the call was not cancelled' });
        return;
      } catch (e) {
        if (!abort.signal.aborted) throw e;
      }
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const { resources } = await client.listResources();
        const done = resources.find((r) => r.uri.includes(run) && r.name.includes('cancelled'));
        if (done) {
          emit({ op: s.op, cancelled: done.uri });
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      emit({ op: s.op, error: 'no run became cancelled within 30 s' });
      break;
    }
    case 'wait_tools_changed': {
      emit({ op: 'waiting' });
      await Promise.race([
        state.toolsChanged,
        new Promise((_, reject) => setTimeout(() => reject(new Error('no list_changed within 30 s')), 30_000)),
      ]);
      emit({ op: s.op, changed: true });
      break;
    }
    case 'list_resources': {
      const { resources } = await client.listResources();
      emit({ op: s.op, resources: resources.map(({ uri, name, mimeType }) => ({ uri, name, mimeType })) });
      break;
    }
    case 'read_resource': {
      const uri = s.uri === 'last-run' ? `airlock://runs/${state.lastRun}` : s.uri;
      const { contents } = await client.readResource({ uri });
      emit({ op: s.op, uri, text: contents.map((c) => c.text ?? '').join('') });
      break;
    }
    default:
      throw new Error(`unknown op ${s.op}`);
  }
}

const config = JSON.parse(process.argv[2]);
const client = new Client({ name: 'airlock-tests-ts', version: '1.0.0' });
const state = {};
state.toolsChanged = new Promise((resolve) => {
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve());
});
try {
  await client.connect(transport(config));
  emit({ op: 'connected', protocolVersion: client.transport?.protocolVersion ?? null });
} catch (e) {
  emit({ op: 'connect', error: `${e.name}: ${e.message} (code ${e.code ?? '-'})` });
  process.exit(0);
}
for (const s of config.steps) {
  try {
    await step(client, s, state);
  } catch (e) {
    emit({ op: s.op, error: `${e.name}: ${e.message}` });
  }
}
await client.close();
