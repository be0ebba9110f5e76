# Self time of a --cpu-prof profile within a run window, per area of the forwarding path (first match
# along the stack), in us per message. usage: areas.py PROFILE FROM_US TO_US MESSAGES
import json,sys
# attribute each sample to the first matching category along its stack (leaf->root order of categories list priority by outermost?)
f,fr,to,cnt=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4])
cats=[
 ('socket write (tick-cork flush)', ['flush protocol/dist/tick-cork']),
 ('socket read', ['onStreamRead']),  # overridden by finer below if inside
 ('GC', ['(garbage collector)']),
 ('idle', ['(idle)']),
]
p=json.load(open(f))
nodes={n['id']:n for n in p['nodes']}
parent={}
for n in p['nodes']:
    for c in n.get('children',[]): parent[c]=n['id']
def key(n):
    cf=n['callFrame']; u=cf['url'].split('/packages/')[-1].split('/node_modules/')[-1]
    return f"{cf['functionName'] or '(anon)'} {u}:{cf['lineNumber']+1}"
# finer categories: first match from leaf upward among these substrings
fine=[
 ('forward: bridge SEND encode+write', 'forward network/'),
 ('bridge receipt -> ack/settle', 'forwarding-link.js:318'),
 ('client frame in (receipts from peer)', 'onFrame client/'),
 ('producer SEND handling (onSend)', 'onSend server/'),
 ('consumer ACK handling (onAck)', 'onAck server/'),
 ('receipts out (flushReceipts)', 'flushReceipts server/'),
 ('dispatch to consumer (deliver)', 'deliver server/'),
 ('queue dispatch (other)', 'runScheduledDispatch'),
 ('group commit / pg', 'group-commit'),
 ('pg', 'pg/lib'), ('pg', 'pg-protocol'),
 ('frame decode (other)', 'decoder.js'),
 ('socket write (tick-cork)', 'tick-cork'),
 ('socket read', 'onStreamRead'),
 ('GC', '(garbage collector)'),
 ('idle', '(idle)'),
 ('program', '(program)'),
 ('timers', 'processTimers'),
 ('microtasks', 'runMicrotasks'),
]
self={}
at=p['startTime']
for s,d in zip(p['samples'],p['timeDeltas']):
    at+=d
    if at<fr or at>to: continue
    self[s]=self.get(s,0)+d
res={}
for nid,us in self.items():
    chain=[]; cur=nid
    while cur is not None:
        chain.append(key(nodes[cur])); cur=parent.get(cur)
    cat='other'
    for k in chain:  # leaf to root; first fine match from the ROOT side is most meaningful? use leaf side
        pass
    # choose the outermost (closest to root) match in fine-order priority
    found=None
    for name,sub in fine:
        if any(sub in k for k in chain): found=name; break
    res[found or 'other']=res.get(found or 'other',0)+us
tot=sum(v for k,v in res.items() if k!='idle')
for k,v in sorted(res.items(),key=lambda x:-x[1]): print(f"{v/cnt:7.2f} us/msg  {100*v/tot if k!='idle' else 0:5.1f}%  {k}")
print(f"{tot/cnt:7.2f} us/msg busy total")
