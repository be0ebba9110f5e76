import { parseBasic } from './admin-auth';
import { bodyPreview } from './message-view';

describe('bodyPreview', () => {
  it('shows UTF-8 text, dropping a character cut by the limit', () => {
    expect(bodyPreview(Buffer.from('héllo'), 100)).toEqual({ encoding: 'utf8', text: 'héllo' });
    // "é" is 2 bytes (1-2): a 2-byte limit cuts it.
    expect(bodyPreview(Buffer.from('héllo'), 2)).toEqual({ encoding: 'utf8', text: 'h' });
    expect(bodyPreview(Buffer.from('€uro'), 2)).toEqual({ encoding: 'utf8', text: '' });
  });

  it('falls back to base64 for binary bodies', () => {
    expect(bodyPreview(Buffer.from([0xc3, 0x28, 0x01]), 10)).toEqual({ encoding: 'base64', text: 'wygB' });
  });
});

describe('parseBasic', () => {
  it('splits at the first colon (RFC 7617 §2) and refuses other schemes', () => {
    const h = `Basic ${Buffer.from('user:pa:ss').toString('base64')}`;
    expect(parseBasic(h)).toEqual({ user: 'user', password: 'pa:ss' });
    expect(parseBasic('Bearer abc')).toBeNull();
    expect(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`)).toBeNull();
    expect(parseBasic(undefined)).toBeNull();
  });
});
