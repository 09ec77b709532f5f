// `{{name}}`: an airlock tool. Input {"name": "Ada"}, output
// {"greeting": "Hello, Ada!"}; records a `greeted` note in the run's evidence.
import { defineTool, note } from 'airlock-sdk';

export const { run, describe } = defineTool({
  name: '{{name}}',
  description: 'Greets someone by name.',
  inputSchema: {
    type: 'object',
    properties: { name: { type: 'string' } },
    required: ['name'],
    additionalProperties: false,
  },
  run({ name }) {
    note('greeted', name);
    return { greeting: `Hello, ${name}!` };
  },
});
