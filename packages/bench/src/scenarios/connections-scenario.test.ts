import { parseMaxOpenFiles } from './connections-scenario';

describe('parseMaxOpenFiles', () => {
  const limits = (soft: string, hard: string) =>
    [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63704                63704                processes ',
      `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     `,
      'Max locked memory         8388608              8388608              bytes     ',
    ].join('\n');

  it('reads the soft limit of /proc/self/limits', () => {
    expect(parseMaxOpenFiles(limits('20000', '20000'))).toBe(20000);
    expect(parseMaxOpenFiles(limits('1024', '524288'))).toBe(1024);
  });

  it('is null when unlimited or absent', () => {
    expect(parseMaxOpenFiles(limits('unlimited', 'unlimited'))).toBeNull();
    expect(parseMaxOpenFiles('Max processes 1 1 processes')).toBeNull();
  });
});
