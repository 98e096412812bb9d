// What the file-system image store keeps on disk, as tests look at it: images, temp files, anything else.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Every file below `root` (a data folder or a storage folder), relative to it, the store's tally left out. */
export function filesBelow(root: string): string[] {
  return (
    (readdirSync(root, { recursive: true }) as string[])
      // A file removed while the folder is read (a sweep running) is simply not there.
      .filter((path) => statSync(join(root, path), { throwIfNoEntry: false })?.isFile() && !/(^|\/)tally\.sqlite(-wal|-shm)?$/.test(path))
      .sort()
  )
}

/** The images of a storage folder, as `<area>/<id>.png` (whatever shard folder holds them). */
export function storedImages(storageRoot: string): string[] {
  return filesBelow(storageRoot)
    .flatMap((path) => {
      const match = /^(working|finished)\/(?:\d+\/\d+\/)?(\d+\.png)$/.exec(path)
      return match ? [`${match[1]}/${match[2]}`] : []
    })
    .sort()
}

/** Temp files of a storage folder (unfinished or abandoned writes). */
export function tempFiles(storageRoot: string): string[] {
  return filesBelow(storageRoot).filter((path) => path.endsWith('.tmp'))
}
