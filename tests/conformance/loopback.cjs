// Loaded into the conformance suite's node (NODE_OPTIONS=--require) by tests/test_conformance.py.
// The suite's scenario servers call listen(0), which binds every interface; our tests bind
// loopback only. Giving listen() a host would make it resolve the host first and bind later,
// and the suite reads server.address() right after listen() returns; so the address is
// swapped one step further in, in `_listen2` (Node's legacy name for the synchronous bind,
// which listen() calls with a null address when no host was given). The suite's URLs say
// `localhost`, which resolves to 127.0.0.1 among others.
'use strict';
const net = require('net');

const bind = net.Server.prototype._listen2;
if (typeof bind !== 'function') {
  throw new Error('loopback.cjs: net.Server.prototype._listen2 is gone in this Node');
}
net.Server.prototype._listen2 = function (address, port, addressType, ...rest) {
  if (address === null || address === undefined || address === '::' || address === '0.0.0.0') {
    return bind.call(this, '127.0.0.1', port, 4, ...rest);
  }
  return bind.call(this, address, port, addressType, ...rest);
};
