package qianfan

import "hash/maphash"

// idSet is the set of IDs a walk has listed, exact and compact: a walk of
// a million-model account holds every ID it has seen, and a map of strings
// costs about 55 bytes an ID there (entry, string header, the string's own
// allocation). Here each ID's bytes sit in 64 KiB chunks behind a one-byte
// length, and an open-addressing table holds their places: about 16 + 8
// bytes for a 15-byte ID, with few, large allocations for the collector.
// IDs longer than 255 bytes, or past 4 GiB of chunks, go to a plain map.
type idSet struct {
	seed   maphash.Seed
	chunks [][]byte
	slots  []uint32 // place+1 of an ID in chunks; 0 is empty
	n      int      // IDs in slots
	long   map[string]struct{}
}

const (
	idChunkBits = 16
	idChunkSize = 1 << idChunkBits
	idMaxChunks = 1<<(32-idChunkBits) - 1 // so that place+1 fits in a uint32
)

// add adds id and reports whether it was new.
func (s *idSet) add(id string) bool {
	if len(id) > 255 || (len(s.chunks) == idMaxChunks && len(s.chunks[len(s.chunks)-1])+1+len(id) > idChunkSize) {
		if _, ok := s.long[id]; ok {
			return false
		}
		if s.long == nil {
			s.long = map[string]struct{}{}
		}
		s.long[id] = struct{}{}
		return true
	}
	if s.slots == nil {
		s.seed = maphash.MakeSeed()
		s.slots = make([]uint32, 1024)
	}
	i := s.find(id)
	if s.slots[i] != 0 {
		return false
	}
	s.slots[i] = s.store(id) + 1
	s.n++
	if s.n*4 > len(s.slots)*3 {
		s.grow()
	}
	return true
}

// find returns the slot holding id, or the empty slot where it goes.
func (s *idSet) find(id string) int {
	mask := len(s.slots) - 1
	i := int(maphash.String(s.seed, id)) & mask
	for s.slots[i] != 0 && string(s.at(s.slots[i]-1)) != id {
		i = (i + 1) & mask
	}
	return i
}

// store appends id to the chunks and returns its place.
func (s *idSet) store(id string) uint32 {
	last := len(s.chunks) - 1
	if last < 0 || len(s.chunks[last])+1+len(id) > idChunkSize {
		s.chunks = append(s.chunks, make([]byte, 0, idChunkSize))
		last++
	}
	c := s.chunks[last]
	place := uint32(last)<<idChunkBits | uint32(len(c))
	s.chunks[last] = append(append(c, byte(len(id))), id...)
	return place
}

// at returns the bytes of the ID stored at place.
func (s *idSet) at(place uint32) []byte {
	c := s.chunks[place>>idChunkBits]
	o := int(place & (idChunkSize - 1))
	return c[o+1 : o+1+int(c[o])]
}

// grow doubles the table.
func (s *idSet) grow() {
	old := s.slots
	s.slots = make([]uint32, 2*len(old))
	mask := len(s.slots) - 1
	for _, p := range old {
		if p == 0 {
			continue
		}
		i := int(maphash.Bytes(s.seed, s.at(p-1))) & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = p
	}
}
