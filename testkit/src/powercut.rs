//! A filesystem that loses power: what a program has not made durable is gone after a cut, the
//! way a machine that loses power drops its page cache (Jepsen's LazyFS, made stricter for names).
//!
//! [`PowerCutFs::mount`] mounts it on FUSE at a fresh directory. Everything lives in memory, as
//! two images of one tree: the *live* image, which every operation reads and changes, and the
//! *durable* image, which only the two sync operations change. [`PowerCutFs::cut`] switches the
//! power off: every later operation fails with `EIO`, and the live image is replaced by the
//! durable one. [`PowerCutFs::power_on`] unmounts (the kernel's caches go with the mount) and
//! mounts the durable image again, as a restarted machine mounts its disk.
//!
//! # What is durable, exactly
//!
//! - `fsync`/`fdatasync` of a **file** makes its data, size, mode and times durable: the whole
//!   file as it is at that moment. Not its name.
//! - `fsync` of a **directory** makes its entries durable: the whole list of names and the
//!   inodes they name as it is at that moment (creates, unlinks, renames into and out of it). An
//!   entry made durable for a file whose data never was comes back as an empty file (as a
//!   journaled filesystem brings back an inode created but never written back); for a directory
//!   never synced itself, as an empty directory.
//! - Nothing else is: `write`, `truncate`, `create`, `mkdir`, `unlink`, `rmdir`, `rename`,
//!   `utimens` and `chmod` change the live image only. A rename between two directories is
//!   durable in each only when each is synced. `close` syncs nothing, nor does `sync(2)` or
//!   `syncfs(2)` (FUSE does not pass them on).
//!
//! That is stricter than LazyFS, which keeps names at once, and than ext4's `data=ordered`, which
//! in practice commits a file's name with its data: it is what POSIX promises, so a program that
//! survives it survives them all. Sockets and FIFOs are names without data. Hard links, symbolic
//! links, devices, extended attributes and `fallocate` are not supported (`EPERM`/`ENOSYS`); the kernel handles `flock` and
//! `fcntl` locks locally. Files are opened `direct_io` and every entry and attribute has a zero
//! time-to-live, so the kernel caches nothing that a cut should have dropped.
//!
//! Files are kept in pages shared between the two images (copy on write), so a sync costs a
//! pointer per page, not a copy of the file.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

const PAGE: usize = 16 << 10;
const ROOT: u64 = 1;
const NO_TTL: Duration = Duration::ZERO;

type Page = Arc<[u8; PAGE]>;

#[derive(Clone)]
enum Content {
    File {
        pages: Vec<Page>,
        size: u64,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
    },
    /// A socket or a FIFO: a name and nothing else (the registry's admin socket is one).
    Special {
        kind: FileType,
    },
}

#[derive(Clone)]
struct Node {
    content: Content,
    perm: u16,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Node {
    fn file(perm: u16) -> Node {
        let now = SystemTime::now();
        Node { content: Content::File { pages: Vec::new(), size: 0 }, perm, mtime: now, ctime: now }
    }

    fn dir(perm: u16) -> Node {
        let now = SystemTime::now();
        Node { content: Content::Dir { entries: BTreeMap::new() }, perm, mtime: now, ctime: now }
    }

    /// The node as it comes back when only its name was made durable.
    fn emptied(&self) -> Node {
        match self.content {
            Content::File { .. } => Node::file(self.perm),
            Content::Dir { .. } => Node::dir(self.perm),
            Content::Special { .. } => self.clone(),
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.content {
            Content::File { size, .. } => (FileType::RegularFile, *size, 1),
            Content::Dir { entries } => (FileType::Directory, 0, 2 + entries.len() as u32),
            Content::Special { kind } => (*kind, 0, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind,
            perm: self.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        }
    }

    /// Whether two versions of a node hold the same content (pages compared by identity).
    fn same_as(&self, other: &Node) -> bool {
        match (&self.content, &other.content) {
            (Content::File { pages: a, size: x }, Content::File { pages: b, size: y }) => {
                x == y && a.len() == b.len() && a.iter().zip(b).all(|(p, q)| Arc::ptr_eq(p, q))
            }
            (Content::Dir { entries: a }, Content::Dir { entries: b }) => a == b,
            (Content::Special { kind: a }, Content::Special { kind: b }) => a == b,
            _ => false,
        }
    }
}

/// One image of the tree: inodes by number, the root at 1.
#[derive(Clone)]
struct Image {
    nodes: HashMap<u64, Node>,
}

impl Image {
    fn new() -> Image {
        Image { nodes: HashMap::from([(ROOT, Node::dir(0o755))]) }
    }

    /// Drops every node no name reaches from the root.
    fn collect(&mut self) {
        let mut reachable = std::collections::HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(Node { content: Content::Dir { entries }, .. }) = self.nodes.get(&ino) {
                for &child in entries.values() {
                    if reachable.insert(child) {
                        todo.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
    }
}

/// What a cut dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose data, size or times had changed since their last sync (or were never synced).
    pub files_reverted: usize,
    /// Bytes of those files' live content that had not been made durable.
    pub unsynced_bytes: u64,
    /// Directories whose entries had changed since their last sync.
    pub directories_reverted: usize,
}

/// Counts of the sync operations the filesystem has seen (all mounts together).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    /// `fsync`/`fdatasync` of files.
    pub files: u64,
    /// `fsync` of directories.
    pub directories: u64,
}

struct State {
    live: Image,
    durable: Image,
    next_ino: u64,
    powered: bool,
    syncs: SyncCounts,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The FUSE side: every request takes the one lock, so operations are atomic to each other.
struct Fs {
    state: Shared,
}

impl State {
    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.live.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        self.live.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: INodeNo) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(dir)?.content {
            Content::Dir { entries } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: INodeNo) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        let node = self.node_mut(dir)?;
        node.mtime = SystemTime::now();
        match &mut node.content {
            Content::Dir { entries } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn child(&self, dir: INodeNo, name: &OsStr) -> Result<u64, Errno> {
        self.entries(dir)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn add(&mut self, parent: INodeNo, name: &OsStr, node: Node) -> Result<FileAttr, Errno> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let attr = node.attr(ino);
        self.live.nodes.insert(ino, node);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(attr)
    }

    fn remove(&mut self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        match (&self.live.nodes[&ino].content, dir) {
            (Content::Dir { entries }, true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Content::Dir { .. }, false) => return Err(Errno::EISDIR),
            (Content::File { .. } | Content::Special { .. }, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        // The node itself stays until the next cut: a file unlinked while open is still written.
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        from: INodeNo,
        name: &OsStr,
        to: INodeNo,
        new: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.child(from, name)?;
        if let Ok(existing) = self.child(to, new) {
            if existing == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            let moving_dir = matches!(self.live.nodes[&ino].content, Content::Dir { .. });
            match &self.live.nodes[&existing].content {
                Content::Dir { entries } if !moving_dir => {
                    return Err(if entries.is_empty() { Errno::EISDIR } else { Errno::ENOTEMPTY });
                }
                Content::Dir { entries } if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                Content::File { .. } | Content::Special { .. } if moving_dir => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        self.entries_mut(to)?; // checks `to` is a directory before anything moves
        self.entries_mut(from)?.remove(name);
        self.entries_mut(to)?.insert(new.to_owned(), ino);
        Ok(())
    }

    fn read(&self, ino: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Content::File { pages, size: len } = &self.node(ino)?.content else { return Err(Errno::EISDIR) };
        let end = (offset + u64::from(size)).min(*len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let (page, within) = ((at / PAGE as u64) as usize, (at % PAGE as u64) as usize);
            let n = (PAGE - within).min((end - at) as usize);
            match pages.get(page) {
                Some(p) => out.extend_from_slice(&p[within..within + n]),
                None => out.resize(out.len() + n, 0),
            }
            at += n as u64;
        }
        Ok(out)
    }

    fn write(&mut self, ino: INodeNo, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        let Content::File { pages, size } = &mut node.content else { return Err(Errno::EISDIR) };
        let end = offset + data.len() as u64;
        let needed = end.div_ceil(PAGE as u64) as usize;
        while pages.len() < needed {
            pages.push(Arc::new([0; PAGE]));
        }
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let (page, within) = ((at / PAGE as u64) as usize, (at % PAGE as u64) as usize);
            let n = (PAGE - within).min(rest.len());
            Arc::make_mut(&mut pages[page])[within..within + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            at += n as u64;
        }
        *size = (*size).max(end);
        Ok(())
    }

    fn truncate(&mut self, ino: INodeNo, new: u64) -> Result<(), Errno> {
        let Content::File { pages, size } = &mut self.node_mut(ino)?.content else { return Err(Errno::EISDIR) };
        if new < *size {
            pages.truncate(new.div_ceil(PAGE as u64) as usize);
            // The page the new end falls in, if it holds data (a file grown by `set_len` may
            // have fewer pages than its size): past the end it reads zeros from now on.
            let tail = (new % PAGE as u64) as usize;
            if tail != 0
                && let Some(page) = pages.get_mut((new / PAGE as u64) as usize)
            {
                Arc::make_mut(page)[tail..].fill(0);
            }
        }
        *size = new;
        Ok(())
    }

    /// `fsync` of a file or a directory (see the module docs for what each makes durable).
    fn sync(&mut self, ino: INodeNo) -> Result<(), Errno> {
        let node = self.node(ino)?.clone();
        if let Content::Dir { entries } = &node.content {
            self.syncs.directories += 1;
            for child in entries.values() {
                if !self.durable.nodes.contains_key(child) {
                    let empty = self.live.nodes[child].emptied();
                    self.durable.nodes.insert(*child, empty);
                }
            }
        } else {
            self.syncs.files += 1;
        }
        self.durable.nodes.insert(ino.0, node);
        Ok(())
    }

    fn cut(&mut self) -> CutReport {
        let mut report = CutReport::default();
        for (ino, node) in &self.live.nodes {
            let same = self.durable.nodes.get(ino).is_some_and(|d| d.same_as(node));
            match (&node.content, same) {
                (_, true) => {}
                (Content::File { size, .. }, false) => {
                    report.files_reverted += 1;
                    report.unsynced_bytes += size;
                }
                (Content::Dir { .. }, false) => report.directories_reverted += 1,
                (Content::Special { .. }, false) => {}
            }
        }
        self.powered = false;
        self.durable.collect();
        self.live = self.durable.clone();
        report
    }
}

impl Fs {
    /// Runs `op` under the lock, or fails with `EIO` while the power is off.
    fn with<T>(&self, op: impl FnOnce(&mut State) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut state = lock(&self.state);
        if !state.powered {
            return Err(Errno::EIO);
        }
        op(&mut state)
    }
}

fn done(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(attr) => reply.entry(&NO_TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(
            reply,
            self.with(|s| {
                let ino = s.child(parent, name)?;
                Ok(s.live.nodes[&ino].attr(ino))
            }),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|s| Ok(s.node(ino)?.attr(ino.0))) {
            Ok(attr) => reply.attr(&NO_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.with(|s| {
            if let Some(size) = size {
                s.truncate(ino, size)?;
            }
            let node = s.node_mut(ino)?;
            if let Some(mode) = mode {
                node.perm = (mode & 0o7777) as u16;
            }
            if let Some(t) = mtime.or(atime) {
                node.mtime = time(t);
            }
            node.ctime = SystemTime::now();
            Ok(node.attr(ino.0))
        });
        match r {
            Ok(attr) => reply.attr(&NO_TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        const S_IFMT: u32 = 0o170000;
        let mut node = Node::file((mode & !umask & 0o7777) as u16);
        match mode & S_IFMT {
            0o100000 => {}
            0o140000 => node.content = Content::Special { kind: FileType::Socket },
            0o010000 => node.content = Content::Special { kind: FileType::NamedPipe },
            _ => return reply.error(Errno::EPERM),
        }
        entry(reply, self.with(|s| s.add(parent, name, node)));
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        entry(reply, self.with(|s| s.add(parent, name, Node::dir((mode & !umask & 0o7777) as u16))));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.with(|s| s.remove(parent, name, false)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        done(reply, self.with(|s| s.remove(parent, name, true)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        done(reply, self.with(|s| s.rename(parent, name, newparent, newname, flags)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|s| s.node(ino).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.with(|s| s.add(parent, name, Node::file((mode & !umask & 0o7777) as u16))) {
            Ok(attr) => reply.created(&NO_TTL, &attr, Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|s| s.read(ino, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|s| s.write(ino, offset, data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok(); // `close` makes nothing durable
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        done(reply, self.with(|s| s.sync(ino)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|s| s.entries(ino).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let listing = self.with(|s| {
            let mut all =
                vec![(ino.0, FileType::Directory, OsString::from(".")), (ino.0, FileType::Directory, "..".into())];
            for (name, child) in s.entries(ino)? {
                let kind = s.live.nodes[child].attr(*child).kind;
                all.push((*child, kind, name.clone()));
            }
            Ok(all)
        });
        match listing {
            Ok(all) => {
                for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        done(reply, self.with(|s| s.sync(ino)));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for any test: 64 GiB in 16 KiB blocks, a million inodes.
        reply.statfs(4 << 20, 4 << 20, 4 << 20, 1 << 20, 1 << 20, PAGE as u32, 255, PAGE as u32);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        done(reply, self.with(|s| s.node(ino).map(|_| ())));
    }
}

/// The filesystem, mounted: see the module docs.
pub struct PowerCutFs {
    state: Shared,
    dir: tempfile::TempDir,
    session: Option<fuser::BackgroundSession>,
}

impl PowerCutFs {
    /// Mounts an empty filesystem at a new temporary directory (needs `/dev/fuse`, and root or
    /// `fusermount3`).
    pub fn mount() -> io::Result<PowerCutFs> {
        let state = Arc::new(Mutex::new(State {
            live: Image::new(),
            durable: Image::new(),
            next_ino: ROOT + 1,
            powered: true,
            syncs: SyncCounts::default(),
        }));
        let dir = tempfile::tempdir()?;
        let mut fs = PowerCutFs { state, dir, session: None };
        fs.attach()?;
        Ok(fs)
    }

    fn attach(&mut self) -> io::Result<()> {
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("powercut".into())];
        let session = fuser::spawn_mount(Fs { state: self.state.clone() }, self.dir.path(), &config).map_err(|e| {
            io::Error::new(e.kind(), format!("mounting the power-cut filesystem (needs /dev/fuse): {e}"))
        })?;
        self.session = Some(session);
        Ok(())
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside it.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(path)
    }

    /// Switches the power off: everything not made durable is dropped at once, and every
    /// operation from now on fails with `EIO` until [`PowerCutFs::power_on`].
    pub fn cut(&self) -> CutReport {
        lock(&self.state).cut()
    }

    /// Unmounts and mounts the durable image again, as after a reboot. Every program with a file
    /// open in it must have exited first (the unmount fails with `EBUSY` otherwise).
    pub fn power_on(&mut self) -> io::Result<()> {
        if let Some(session) = self.session.take() {
            session.umount_and_join()?;
        }
        let mut state = lock(&self.state);
        if state.powered {
            state.cut(); // power_on without a cut: a cut at this moment
        }
        state.powered = true;
        drop(state);
        self.attach()
    }

    /// The syncs seen so far.
    pub fn syncs(&self) -> SyncCounts {
        lock(&self.state).syncs
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::io::Write;

    use super::*;

    fn sync_dir(path: &Path) {
        File::open(path).expect("open dir").sync_all().expect("fsync dir");
    }

    fn write(path: &Path, data: &[u8]) -> File {
        let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(path).expect("create");
        f.write_all(data).expect("write");
        f
    }

    fn reboot(fs: &mut PowerCutFs) -> CutReport {
        let report = fs.cut();
        fs.power_on().expect("power on");
        report
    }

    #[test]
    fn what_was_not_synced_is_gone_after_a_cut_and_what_was_stays() {
        let mut fs = PowerCutFs::mount().expect("mount");
        let root = fs.path().to_owned();

        // Data without the file's fsync: the name (synced) comes back, empty.
        write(&fs.join("a"), b"hello");
        // Data synced, name never: gone.
        write(&fs.join("b"), b"world").sync_all().expect("fsync");
        sync_dir(&root);
        // Synced after the directory: the data stays with the name.
        write(&fs.join("b"), b"world").sync_all().expect("fsync");
        write(&fs.join("c"), b"lost name").sync_all().expect("fsync");
        let report = reboot(&mut fs);
        assert_eq!(std::fs::read(fs.join("a")).expect("a"), b"");
        assert_eq!(std::fs::read(fs.join("b")).expect("b"), b"world");
        assert!(!fs.join("c").exists(), "a name never synced is gone");
        let expected = CutReport { files_reverted: 1, unsynced_bytes: 5, directories_reverted: 1 };
        assert_eq!(report, expected, "a's data and c's name");

        // Operations after the cut fail until power comes back.
        let f = write(&fs.join("d"), b"x");
        fs.cut();
        assert_eq!(std::fs::read(fs.join("b")).map_err(|e| e.raw_os_error()), Err(Some(5)), "EIO");
        assert!(f.sync_all().is_err());
        drop(f);
        fs.power_on().expect("power on");
        assert!(!fs.join("d").exists());
        assert_eq!(std::fs::read(fs.join("b")).expect("b"), b"world");
    }

    #[test]
    fn a_file_grown_sparse_then_shrunk_keeps_its_data() {
        let fs = PowerCutFs::mount().expect("mount");
        let path = fs.join("sparse");
        let f = write(&path, &[7; 100]);
        f.set_len(3 * PAGE as u64).expect("grow");
        f.set_len(PAGE as u64 + 50).expect("shrink"); // the end falls in a page never written
        f.set_len(3 * PAGE as u64).expect("grow again");
        let data = std::fs::read(&path).expect("read");
        assert_eq!(data.len(), 3 * PAGE);
        assert_eq!(&data[..100], &[7; 100]);
        assert!(data[100..].iter().all(|&b| b == 0));
    }

    #[test]
    fn renames_unlinks_and_truncates_are_volatile_until_synced() {
        let mut fs = PowerCutFs::mount().expect("mount");
        let root = fs.path().to_owned();
        std::fs::create_dir(fs.join("dir")).expect("mkdir");
        sync_dir(&root);
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        write(&fs.join("dir/x"), &big).sync_all().expect("fsync");
        write(&fs.join("dir/gone"), b"g").sync_all().expect("fsync");
        sync_dir(&fs.join("dir"));

        // Rename and unlink without the directory's fsync: undone.
        std::fs::rename(fs.join("dir/x"), fs.join("dir/y")).expect("rename");
        std::fs::remove_file(fs.join("dir/gone")).expect("unlink");
        // Truncate without the file's fsync: undone.
        let f = OpenOptions::new().write(true).open(fs.join("dir/y")).expect("open");
        f.set_len(10).expect("truncate");
        drop(f);
        reboot(&mut fs);
        assert_eq!(std::fs::read(fs.join("dir/x")).expect("x back"), big);
        assert!(!fs.join("dir/y").exists());
        assert_eq!(std::fs::read(fs.join("dir/gone")).expect("gone back"), b"g");

        // With their fsyncs, they stay.
        std::fs::rename(fs.join("dir/x"), fs.join("dir/y")).expect("rename");
        std::fs::remove_file(fs.join("dir/gone")).expect("unlink");
        let f = OpenOptions::new().write(true).open(fs.join("dir/y")).expect("open");
        f.set_len(10).expect("truncate");
        f.sync_all().expect("fsync");
        drop(f);
        sync_dir(&fs.join("dir"));
        reboot(&mut fs);
        assert!(!fs.join("dir/x").exists());
        assert!(!fs.join("dir/gone").exists());
        assert_eq!(std::fs::read(fs.join("dir/y")).expect("y"), &big[..10]);

        // A rename between directories is durable in each only when each is synced: here only
        // the target, so the file is in both after the cut.
        std::fs::create_dir(fs.join("other")).expect("mkdir");
        sync_dir(&root);
        std::fs::rename(fs.join("dir/y"), fs.join("other/y")).expect("rename");
        sync_dir(&fs.join("other"));
        reboot(&mut fs);
        assert_eq!(std::fs::read(fs.join("other/y")).expect("target"), &big[..10]);
        assert_eq!(std::fs::read(fs.join("dir/y")).expect("source"), &big[..10]);
        assert_eq!(fs.syncs().directories, 5);
    }
}
