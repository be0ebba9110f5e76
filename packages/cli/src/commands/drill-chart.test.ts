import { niceStep, renderDrillChart, xmlEscape } from './drill-chart';

/**
 * A small XML well-formedness check (no parser in the dependencies): one root, every tag closed in
 * order, attributes quoted and unique, no raw `&` or `<` in text.
 */
function parseXml(xml: string): { name: string; attrs: Record<string, string>; text: string }[] {
  const elements: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const stack: { name: string; attrs: Record<string, string>; text: string }[] = [];
  let roots = 0;
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let last = 0;
  for (let m = token.exec(body); m !== null; m = token.exec(body)) {
    last = token.lastIndex;
    const [, closing, name, attrText, selfClosing, text] = m;
    if (text !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(text)) throw new Error(`raw & in text: ${text}`);
      const open = stack[stack.length - 1];
      if (!open && text.trim() !== '') throw new Error('text outside the root');
      if (open) open.text += text;
      continue;
    }
    if (closing) {
      if (stack.pop()?.name !== name) throw new Error(`</${name}> closes nothing`);
      continue;
    }
    if (stack.length === 0) roots++;
    const attrs: Record<string, string> = {};
    for (const a of (attrText ?? '').matchAll(/([\w:-]+)="([^"]*)"/g)) {
      if ((a[1] as string) in attrs) throw new Error(`attribute ${a[1]} twice on <${name}>`);
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(a[2] as string)) throw new Error(`raw & in ${a[1]}`);
      attrs[a[1] as string] = a[2] as string;
    }
    const element = { name: name as string, attrs, text: '' };
    elements.push(element);
    if (!selfClosing) stack.push(element);
  }
  if (last !== body.length) throw new Error(`not XML at offset ${last}: ${body.slice(last, last + 40)}`);
  if (stack.length > 0) throw new Error(`unclosed: ${stack.map((e) => e.name).join(', ')}`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return elements;
}

describe('the drill chart', () => {
  const svg = renderDrillChart({
    title: 'keel drill: 2 × kill <test> & "more"',
    subtitle: 'n1 → n2',
    bucketMs: 100,
    receipts: [20, 20, 20, 0, 0, 0, 40, 20, 20, 20],
    deliveries: [19, 21, 20, 0, 0, 0, 0, 60, 20, 20],
    markers: [
      { atMs: 300, untilMs: 550, label: '1: kill n1 → n2 0.25 s' },
      { atMs: 800, label: "2: kill n2 → n3 <'fast'>" },
    ],
  });
  const elements = parseXml(svg);
  const all = (name: string, cls?: string) =>
    elements.filter((e) => e.name === name && (cls === undefined || e.attrs.class === cls));

  it('is well-formed SVG with a title', () => {
    expect(
      svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'),
    ).toBe(true);
    expect(elements[0]?.name).toBe('svg');
    expect(all('title')[0]?.text).toBe('keel drill: 2 × kill &lt;test&gt; &amp; &quot;more&quot;');
  });

  it('draws receipts and deliveries as one point per bucket, scaled to the plot', () => {
    const receipts = all('polyline', 'receipts')[0];
    const deliveries = all('polyline', 'deliveries')[0];
    const points = (p: typeof receipts) =>
      (p?.attrs.points ?? '').split(' ').map((xy) => xy.split(',').map(Number) as [number, number]);
    expect(points(receipts)).toHaveLength(10);
    expect(points(deliveries)).toHaveLength(10);
    // x grows with time; the highest value (60) sits at the top of the axis (peak rounded up: 60)
    const xs = points(deliveries).map(([x]) => x);
    expect([...xs].sort((a, b) => a - b)).toEqual(xs);
    const ys = points(deliveries).map(([, y]) => y);
    expect(Math.min(...ys)).toBe(70); // top margin
    expect(points(receipts)[3]?.[1]).toBe(420); // a zero sits on the x axis (top margin 70 + plot height 350)
  });

  it('marks each fault with a vertical line, a label and a band until the new master', () => {
    const faults = elements.filter(
      (e) => e.name === 'line' && e.attrs['stroke-dasharray'] && e.attrs.y1 !== e.attrs.y2,
    );
    expect(faults).toHaveLength(2);
    for (const f of faults) expect(f.attrs.x1).toBe(f.attrs.x2);
    const labels = all('text').map((t) => t.text);
    expect(labels).toContain('1: kill n1 → n2 0.25 s');
    expect(labels).toContain('2: kill n2 → n3 &lt;&apos;fast&apos;&gt;');
    const bands = elements.filter((e) => e.name === 'rect' && e.attrs['fill-opacity']);
    expect(bands).toHaveLength(1); // the second marker has no end
    expect(Number(bands[0]?.attrs.x)).toBeCloseTo(Number(faults[0]?.attrs.x1), 5);
    expect(labels).toEqual(expect.arrayContaining(['receipts', 'deliveries', 'fault', 'time (s)']));
  });

  it('escapes XML and picks round axis steps', () => {
    expect(xmlEscape(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    expect(niceStep(60, 5)).toBe(20);
    expect(niceStep(7, 5)).toBe(2);
    expect(niceStep(0, 5)).toBe(1);
    expect(niceStep(1000, 10)).toBe(100);
  });

  it('has a checker that does reject broken XML', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow('</svg> closes nothing');
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow('raw &');
    expect(() => parseXml('<svg x=1></svg>')).toThrow('not XML');
    expect(() => parseXml('<svg></svg><svg></svg>')).toThrow('2 root elements');
  });

  it('renders an empty timeline too', () => {
    const empty = parseXml(
      renderDrillChart({ title: 'empty', bucketMs: 100, receipts: [], deliveries: [], markers: [] }),
    );
    expect(empty.filter((e) => e.name === 'polyline')).toHaveLength(2);
  });
});
