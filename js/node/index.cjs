'use strict';
// `require('socket-lease/node')`: the ws guard. See index.d.ts for the API.
module.exports = require('./guard.cjs');
