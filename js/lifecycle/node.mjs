// `import ... from 'socket-lease/lifecycle'` on Node and Bun: the CommonJS copies, which
// use the same LeaseError class as `socket-lease` there (js/node.cjs loads the CommonJS
// runtime), so `instanceof LeaseError` holds for the lifecycle's option errors too. (Node
// and Bun read the names from index.cjs's `module.exports = { ... }`.)
export * from './index.cjs';
